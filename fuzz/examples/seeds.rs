//! Writes a seed corpus for every target into `corpus/<target>/`: valid inputs (batches with
//! every codec, headers, control and legacy entries; frames of every codec) for the fuzzer to
//! mutate, so it starts past the magic numbers and checksums instead of rediscovering them.
//!
//! `scripts/fuzz` runs it when a target's corpus is empty:
//! `cargo run --release --example seeds -- <fuzz dir>`.

use std::fs;
use std::path::Path;

use bytes::BytesMut;
use klamm_protocol::api::any::IMPLEMENTED;
use klamm_protocol::compression::Compression;
use klamm_protocol::records::{end_transaction_batch, ControlRecordType, RecordBatchBuilder};
use klamm_protocol::ApiKey;

fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(format!("record {i} value {} ", i % 5).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn compressed(codec: Compression, input: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec.compress(input, &mut out).expect("seed compression");
    out.to_vec()
}

fn batch(codec: Compression, records: usize, base_offset: i64) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new().base_offset(base_offset).producer(1000, 1, 5).compression(codec);
    for i in 0..records {
        let key = format!("key-{i}");
        let value = text(20 + i * 7);
        let headers = [("trace-id", Some(&b"abc"[..])), ("empty", None)];
        let headers = &headers[..i % 3];
        b.push_with_headers(
            1_700_000_000_000 + i as i64,
            Some(key.as_bytes()),
            Some(&value),
            headers.iter().copied(),
        )
        .expect("seed record");
    }
    b.finish().expect("seed batch").to_vec()
}

/// A legacy message set entry (magic 0 or 1).
fn legacy(offset: i64, magic: u8, attributes: u8, value: &[u8]) -> Vec<u8> {
    let mut body = vec![magic, attributes];
    if magic == 1 {
        body.extend_from_slice(&1_600_000_000_000i64.to_be_bytes());
    }
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value);
    let mut out = offset.to_be_bytes().to_vec();
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&crc32fast_hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// CRC-32 (IEEE), bitwise: the seed generator needs no dependency for it.
fn crc32fast_hash(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// xxHash32 with seed 0 of fewer than 16 bytes (an LZ4 frame descriptor), for its header
/// checksum byte: the seed generator needs no dependency for it.
fn xxh32(data: &[u8]) -> u32 {
    const P1: u32 = 0x9E37_79B1;
    const P2: u32 = 0x85EB_CA77;
    const P3: u32 = 0xC2B2_AE3D;
    const P4: u32 = 0x27D4_EB2F;
    const P5: u32 = 0x1656_67B1;
    assert!(data.len() < 16);
    let mut h = P5.wrapping_add(data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in words.by_ref() {
        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        h = h.wrapping_add(w.wrapping_mul(P3)).rotate_left(17).wrapping_mul(P4);
    }
    for &b in words.remainder() {
        h = h.wrapping_add(u32::from(b).wrapping_mul(P5)).rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let dir = dir.join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(name), data).expect("seed file");
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let dir = Path::new(&dir);
    let codecs = Compression::ALL.into_iter().filter(|c| c.is_enabled());

    for codec in codecs.clone().filter(|c| *c != Compression::None) {
        let target = format!("decompress_{}", codec.name());
        for len in [0, 1, 40, 700, 3000] {
            write(dir, &target, &format!("seed-{len}"), &compressed(codec, &text(len)));
        }
        if codec == Compression::Zstd {
            // Regressions: a frame (1 KiB window) whose header claims 64 MiB of content, with
            // one compressed block of garbage, or one short raw block. The output buffer once
            // started at the claimed size.
            let claim = |block: &[u8]| {
                let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00];
                frame.extend_from_slice(&(64u64 << 20).to_le_bytes());
                frame.extend_from_slice(block);
                frame
            };
            write(
                dir,
                &target,
                "claims-64mib-compressed",
                &claim(&[0x55, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            );
            let mut raw = vec![0x21, 0x03, 0];
            raw.extend_from_slice(&text(100));
            write(dir, &target, "claims-64mib-raw", &claim(&raw));
        }
        if codec == Compression::Lz4 {
            // Regression: a frame claiming 64 MiB of content that holds one stored 10-byte
            // block. Room for the claimed size was once reserved up front.
            let mut descriptor = vec![0x68, 0x40];
            descriptor.extend_from_slice(&(64u64 << 20).to_le_bytes());
            let mut frame = vec![0x04, 0x22, 0x4d, 0x18];
            frame.extend_from_slice(&descriptor);
            frame.push((xxh32(&descriptor) >> 8) as u8);
            frame.extend_from_slice(&(10u32 | 1 << 31).to_le_bytes());
            frame.extend_from_slice(b"0123456789");
            frame.extend_from_slice(&0u32.to_le_bytes());
            write(dir, &target, "claims-64mib", &frame);
        }
        if codec == Compression::Snappy {
            // Regression: a raw block announcing 16 MiB that holds a 2-byte literal; the
            // announced size was once zero-filled before decoding failed.
            write(dir, &target, "claims-16mib", &[0x80, 0x80, 0x80, 0x08, 0x04, b'a', b'b']);
            // A raw snappy block: the first block of the xerial stream.
            let framed = compressed(codec, &text(700));
            write(dir, &target, "seed-raw", &framed[20..]);
        }
    }

    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for codec in codecs {
        seeds.push((format!("batch-{}", codec.name()), batch(codec, 4, 100)));
    }
    let mut two = batch(Compression::None, 2, 0);
    two.extend_from_slice(&batch(Compression::None, 1, 2));
    seeds.push(("two-batches".into(), two));
    seeds.push((
        "control".into(),
        end_transaction_batch(ControlRecordType::Commit, 1000, 1, 3, 10, 1_700_000_000_000)
            .expect("marker")
            .to_vec(),
    ));
    let mut set = legacy(0, 0, 0, b"magic 0");
    set.extend_from_slice(&legacy(1, 1, 0, b"magic 1"));
    seeds.push(("legacy".into(), set));
    for codec in
        [Compression::Gzip, Compression::Snappy, Compression::Lz4].into_iter().filter(|c| c.is_enabled())
    {
        let mut inner = legacy(0, 1, 0, b"first");
        inner.extend_from_slice(&legacy(1, 1, 0, b"second"));
        seeds.push((
            format!("legacy-{}", codec.name()),
            legacy(11, 1, codec.id(), &compressed(codec, &inner)),
        ));
    }
    if Compression::Gzip.is_enabled() {
        // Regressions: magic 1 wrappers whose offset arithmetic overflows (the wrapper offset
        // minus a negative last inner offset; an inner offset near i64::MAX above the base).
        let inner = legacy(-1, 1, 0, b"x");
        let wrapper = legacy(i64::MAX, 1, Compression::Gzip.id(), &compressed(Compression::Gzip, &inner));
        seeds.push(("legacy-offset-overflow".into(), wrapper));
        let mut inner = legacy(i64::MAX, 1, 0, b"x");
        inner.extend_from_slice(&legacy(0, 1, 0, b"y"));
        let wrapper = legacy(10, 1, Compression::Gzip.id(), &compressed(Compression::Gzip, &inner));
        seeds.push(("legacy-inner-offset-overflow".into(), wrapper));
    }
    for (name, data) in seeds {
        // The first byte selects checksum verification (even: verify).
        for mode in [0u8, 1] {
            let mut input = vec![mode];
            input.extend_from_slice(&data);
            write(dir, "record_batches", &format!("{name}-{mode}"), &input);
        }
    }
    frame_seeds(dir);
    hostile_frame_seeds(dir);
}

/// Appends an unsigned varint.
fn uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Regressions for `request`, `response` and `consumer_protocol`: counts and lengths that
/// decoders once trusted, and tagged-field sections they once accepted.
fn hostile_frame_seeds(dir: &Path) {
    // Metadata v1 response: a brokers array announcing as many brokers as bytes follow
    // (pre-allocated as count x broker size before the fix), the first broker malformed.
    if let Some(index) = IMPLEMENTED.iter().position(|(key, _, _)| *key == ApiKey::METADATA) {
        let (_, min, _) = IMPLEMENTED[index];
        let count = 64 << 10;
        let mut input = vec![index as u8, (1 - min) as u8];
        input.extend_from_slice(&7i32.to_be_bytes());
        input.extend_from_slice(&(count as i32).to_be_bytes());
        input.resize(input.len() + count, 0xff);
        write(dir, "response", "hostile-array-count", &input);
    }
    // ApiVersions v3 requests (flexible header and body). Header: key, version, correlation
    // id, null client id.
    let header = |tags: &[u8]| {
        let mut frame = vec![0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff];
        frame.extend_from_slice(tags);
        frame
    };
    let body = |name_len: usize| {
        let mut body = Vec::new();
        uvarint(&mut body, name_len as u32 + 1);
        body.resize(body.len() + name_len, b'a');
        body.extend_from_slice(&[2, b'1', 0]);
        body
    };
    // A compact string of 0x8000 bytes, one past what Java reads.
    let mut frame = header(&[0]);
    frame.extend_from_slice(&body(0x8000));
    write(dir, "request", "hostile-long-compact-string", &frame);
    // Header tagged fields out of order (5 then 1), and tag 1 twice.
    for (name, tags) in [("unordered", [2u8, 5, 1, 0, 1, 1, 0]), ("duplicate", [2, 1, 1, 0, 1, 1, 0])] {
        let mut frame = header(&tags);
        frame.extend_from_slice(&body(5));
        write(dir, "request", &format!("hostile-tags-{name}"), &frame);
    }
    // A consumer assignment announcing 64 Ki topics in as many bytes, the first one malformed.
    let mut assignment = vec![0, 3];
    assignment.extend_from_slice(&(64i32 << 10).to_be_bytes());
    assignment.resize(assignment.len() + (64 << 10), 0xff);
    write(dir, "consumer_protocol", "hostile-array-count", &assignment);
}

/// Seeds for `request` and `response`: the frames recorded from librdkafka and the Java client
/// (`protocol/tests/fixtures/<client>/<Api>-v<version>-<n>-{request,response}.bin`).
fn frame_seeds(dir: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/fixtures");
    let Ok(clients) = fs::read_dir(&fixtures) else { return };
    for client in clients.flatten() {
        let Ok(files) = fs::read_dir(client.path()) else { continue };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let Ok(frame) = fs::read(file.path()) else { continue };
            let seed = format!("{}-{name}", client.file_name().to_string_lossy());
            if name.ends_with("-request.bin") {
                write(dir, "request", &seed, &frame);
            } else if let Some(input) = response_input(&name, &frame) {
                write(dir, "response", &seed, &input);
            }
        }
    }
}

/// The `response` target's input for a recorded response: API index and version offset, then
/// the frame.
fn response_input(name: &str, frame: &[u8]) -> Option<Vec<u8>> {
    let (api, rest) = name.split_once("-v")?;
    let version: i16 = rest.split('-').next()?.parse().ok()?;
    let index = IMPLEMENTED.iter().position(|(key, _, _)| key.name() == Some(api))?;
    let (_, min, _) = IMPLEMENTED[index];
    let mut input = vec![u8::try_from(index).ok()?, u8::try_from(version - min).ok()?];
    input.extend_from_slice(frame);
    Some(input)
}
