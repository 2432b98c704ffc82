//! A client that half-closes after its requests still gets every reply.

mod support;

use loadgen::server_process::ServerProcess;
use loadgen::testkit::assert_half_close_gets_every_reply;
use support::{io_uring_usable, program};

/// Requests written at once, then our FIN.
const PINGS: usize = 50;

/// `printf '...' | nc` style: the client writes 50 pings and shuts its sending side. The
/// multishot receive completes with the pings and then with 0 (EOF), often in the same batch of
/// completions; the server must still write all 50 pongs before it closes: the EOF ends the
/// client's membership, not the replies owed to it.
#[test]
fn answers_a_client_that_half_closed() {
    if !io_uring_usable("answers_a_client_that_half_closed") {
        return;
    }
    let server = ServerProcess::spawn(program(), [] as [&str; 0]).expect("start chat-uring");
    assert_half_close_gets_every_reply(server.addr(), PINGS);
}
