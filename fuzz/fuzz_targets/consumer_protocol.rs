//! Decodes arbitrary bytes as a consumer-group member's subscription (JoinGroup metadata) and
//! as an assignment (SyncGroup), as a group leader and a member read what other members and
//! the leader sent, which may be any client. Any input must give a value or a typed error;
//! never a panic, a hang, or an allocation the input does not justify. A value that decodes
//! must encode again at our newest version and decode to the same value.
#![no_main]

use bytes::Bytes;
use klamm_protocol::api::consumer_protocol::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(subscription) = ConsumerProtocolSubscription::from_bytes(bytes.clone()) {
        let again = subscription
            .to_bytes(ConsumerProtocolSubscription::MAX_VERSION)
            .expect("a decoded subscription encodes at the newest version");
        let back = ConsumerProtocolSubscription::from_bytes(again).expect("and decodes again");
        assert_eq!(back, subscription);
    }
    if let Ok(assignment) = ConsumerProtocolAssignment::from_bytes(bytes) {
        let again = assignment
            .to_bytes(ConsumerProtocolAssignment::MAX_VERSION)
            .expect("a decoded assignment encodes at the newest version");
        let back = ConsumerProtocolAssignment::from_bytes(again).expect("and decodes again");
        assert_eq!(back, assignment);
    }
});
