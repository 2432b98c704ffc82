//! `loadgen check --profile echo`: the scenarios for an echo server (the source course's
//! 练习2), not a chat server. An echo server sends every line back exactly as it came, to the
//! client that sent it, in order; the scenarios check exactly that, byte for byte, in the ways
//! a simple server gets wrong: lines split over several reads or several in one, a long line
//! that does not fit one read buffer, many clients at once, and a client that half-closes.
//!
//! ```text
//! loadgen check --addr 127.0.0.1:9000 --profile echo
//! ```

use super::client::{clip, Client, Line};
use super::{Ctx, Need, Scenario};
use std::net::Shutdown;
use std::time::{Duration, Instant};

/// The long line's length when the server's `--max-line` is not given: longer than the 4 KiB
/// or 8 KiB buffer a first echo server reads into.
const LONG_LINE: usize = 20_000;

/// Clients of the many-clients scenario, and lines each sends.
const CLIENTS: usize = 50;
const LINES_EACH: usize = 20;

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::TwoClients;
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("echo.one_line", &[], one_line),
        s("echo.keeps_order", &[], keeps_order),
        s("echo.split_line", &[], split_line),
        s("echo.coalesced_lines", &[], coalesced_lines),
        s("echo.unicode_line", &[], unicode_line),
        s("echo.long_line", &[], long_line),
        s("echo.many_clients", &[TwoClients], many_clients),
        s("echo.half_close", &[], half_close),
    ]
}

/// The next line must be exactly `expected` (newline included).
fn expect_echo(client: &mut Client, expected: &[u8]) -> Result<(), String> {
    let deadline = Instant::now() + client_timeout(client);
    match client.next_line(deadline)? {
        Line::Bytes(line) if line == expected => Ok(()),
        Line::Bytes(line) => Err(format!(
            "{}: expected the echo {:?}, got {:?}",
            client.label,
            clip(&String::from_utf8_lossy(expected)),
            clip(&String::from_utf8_lossy(&line))
        )),
        Line::Timeout => Err(format!(
            "{}: expected the echo {:?}, got nothing within {} ms",
            client.label,
            clip(&String::from_utf8_lossy(expected)),
            client_timeout(client).as_millis()
        )),
        Line::Closed(how) => Err(format!(
            "{}: expected the echo {:?}, but the connection closed ({how})",
            client.label,
            clip(&String::from_utf8_lossy(expected))
        )),
    }
}

fn client_timeout(client: &Client) -> Duration {
    client.timeout()
}

/// A line unique to this run: `<tag> <n> <run's fresh name>`.
fn line(ctx: &Ctx, tag: &str, n: usize) -> Vec<u8> {
    format!("{tag} {n} {}\n", ctx.fresh("echo")).into_bytes()
}

/// One line comes back, exactly, and nothing else.
fn one_line(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "echo")?;
    let hello = line(ctx, "hello", 1);
    client.send_raw(&hello)?;
    expect_echo(&mut client, &hello)?;
    match client.next_line(Instant::now() + Duration::from_millis(200))? {
        Line::Timeout => Ok(()),
        Line::Bytes(extra) => Err(format!(
            "echo: after the echo, the server sent more: {:?}",
            clip(&String::from_utf8_lossy(&extra))
        )),
        Line::Closed(how) => Err(format!(
            "echo: the server closed the connection after one line ({how})"
        )),
    }
}

/// 200 lines sent back to back, without waiting, come back in the order they were sent.
fn keeps_order(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "order")?;
    let lines: Vec<Vec<u8>> = (0..200).map(|n| line(ctx, "order", n)).collect();
    for chunk in lines.chunks(20) {
        client.send_raw(&chunk.concat())?;
    }
    for expected in &lines {
        expect_echo(&mut client, expected)?;
    }
    Ok(())
}

/// A line sent in three writes, 50 ms apart, comes back once and whole: the server must keep
/// the start of a line until its newline arrives (or echo the bytes as they come).
fn split_line(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "split")?;
    let whole = line(ctx, "split in three writes", 1);
    let third = whole.len() / 3;
    for piece in [
        &whole[..third],
        &whole[third..2 * third],
        &whole[2 * third..],
    ] {
        client.send_raw(piece)?;
        std::thread::sleep(Duration::from_millis(50));
    }
    expect_echo(&mut client, &whole)
}

/// Five lines in one write come back as five lines: one read may hold several.
fn coalesced_lines(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "coalesced")?;
    let lines: Vec<Vec<u8>> = (0..5).map(|n| line(ctx, "coalesced", n)).collect();
    client.send_raw(&lines.concat())?;
    for expected in &lines {
        expect_echo(&mut client, expected)?;
    }
    Ok(())
}

/// Chinese and emoji come back byte for byte (an echo server moves bytes, it does not decode).
fn unicode_line(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "unicode")?;
    let text = format!("你好，回声服务器 🦀 {}\n", ctx.fresh("u"));
    client.send_raw(text.as_bytes())?;
    expect_echo(&mut client, text.as_bytes())
}

/// A line longer than a typical read buffer (20,000 bytes, or just under `--max-line`) comes
/// back whole.
fn long_line(ctx: &Ctx) -> Result<(), String> {
    let len = ctx
        .config
        .max_line
        .map_or(LONG_LINE, |max| LONG_LINE.min(max.saturating_sub(1)));
    let mut client = Client::connect(ctx, "long")?;
    let mut long = format!("long {} ", ctx.fresh("l")).into_bytes();
    long.resize(len.max(long.len() + 1) - 1, b'x');
    long.push(b'\n');
    client.send_raw(&long)?;
    expect_echo(&mut client, &long)
}

/// 50 clients connected at once, each sending 20 lines in turns with the others: each gets its
/// own lines back, in order, and none of anyone else's.
fn many_clients(ctx: &Ctx) -> Result<(), String> {
    let mut clients = (0..CLIENTS)
        .map(|i| Client::connect(ctx, &format!("client{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let tag = ctx.fresh("many");
    let line_of =
        |client: usize, n: usize| format!("{tag} client {client} line {n}\n").into_bytes();
    for n in 0..LINES_EACH {
        for (i, client) in clients.iter_mut().enumerate() {
            client.send_raw(&line_of(i, n))?;
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        for n in 0..LINES_EACH {
            expect_echo(client, &line_of(i, n))?;
        }
    }
    Ok(())
}

/// A client that sends its lines and then shuts down its sending side still gets every echo,
/// and then the server closes.
fn half_close(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "closer")?;
    let lines: Vec<Vec<u8>> = (0..10).map(|n| line(ctx, "half-close", n)).collect();
    client.send_raw(&lines.concat())?;
    client
        .writer()?
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("closer: shutdown(SHUT_WR) failed: {e}"))?;
    for expected in &lines {
        expect_echo(&mut client, expected)
            .map_err(|e| format!("{e} (after the client's shutdown(SHUT_WR))"))?;
    }
    let deadline = Instant::now() + client_timeout(&client);
    match client.next_line(deadline)? {
        Line::Closed(_) => Ok(()),
        Line::Bytes(extra) => Err(format!(
            "closer: after the last echo, the server sent {:?}",
            clip(&String::from_utf8_lossy(&extra))
        )),
        Line::Timeout => Err(format!(
            "closer: the server did not close within {} ms of echoing everything to a client \
             that had shut down its sending side",
            client_timeout(&client).as_millis()
        )),
    }
}
