//! `Masker::mask` on a 200-byte log line with 10 secrets, none of which occurs: the common
//! case, since it runs on every line of output, and with one. Prints nanoseconds per line, the
//! fastest of 20 rounds.
//!
//! `cargo bench -p monkeyci-protocol --bench mask`

use std::hint::black_box;
use std::time::Instant;

use monkeyci_protocol::Masker;

fn main() {
    let secrets: Vec<String> = (0..10).map(|i| format!("s3cr3t-token-{i}-AbCdEfGhIjKl/+={i}")).collect();
    let masker = Masker::new(secrets.iter().map(String::as_str));
    let clean = "2026-05-01T12:00:00Z INFO compiling monkeyci-protocol v0.1.0 (/work/monkeyci-protocol) \
                 with features [default, std], 42 units, target x86_64-unknown-linux-gnu, profile dev";
    let line = format!("{clean:<200}");
    assert_eq!(line.len(), 200);
    let with_secret = format!("{}{}", &line[..200 - secrets[3].len()], secrets[3]);
    assert_eq!(with_secret.len(), 200);
    for (name, text) in [("no secret", &line), ("one secret", &with_secret)] {
        // The fastest of several rounds: the least disturbed by whatever else runs.
        let iterations = 50_000u32;
        let ns = (0..20)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..iterations {
                    black_box(masker.mask(black_box(text)));
                }
                start.elapsed().as_nanos() / u128::from(iterations)
            })
            .min()
            .unwrap_or_default();
        println!("mask, 200-byte line, 10 secrets, {name}: {ns} ns/line");
    }

    // A 2048-bit RSA key's size: 1,600 base64 characters in lines of 64.
    let body: String = (0..1200u32)
        .map(|i| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(i * 7 % 64) as usize]))
        .collect();
    let body = base64_lines(&body);
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\n");
    let values: Vec<&str> = secrets.iter().map(String::as_str).chain([pem.as_str()]).collect();
    let start = Instant::now();
    let masker = Masker::new(values.iter().copied());
    println!("new, 10 secrets and a PEM key: {} µs", start.elapsed().as_micros());
    let iterations = 50_000u32;
    let ns = (0..20)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(masker.mask(black_box(&line)));
            }
            start.elapsed().as_nanos() / u128::from(iterations)
        })
        .min()
        .unwrap_or_default();
    println!("mask, 200-byte line, 10 secrets and a PEM key, no secret: {ns} ns/line");
}

/// `text` in lines of 64 characters, each ending with a newline.
fn base64_lines(text: &str) -> String {
    text.as_bytes().chunks(64).map(|c| format!("{}\n", String::from_utf8_lossy(c))).collect()
}
