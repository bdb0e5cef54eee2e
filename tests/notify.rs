//! sd_notify messages on a notify socket the test binds. Changes the environment, so this
//! file holds a single test.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use archy::systemd::notify;

#[tokio::test]
async fn notify_messages_and_watchdog_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let next = || recv(&socket);

    // Without NOTIFY_SOCKET nothing is sent and nothing fails.
    // SAFETY: the only test in this file; no other thread reads the environment.
    unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    notify::ready();
    assert!(notify::spawn_watchdog().is_none());

    unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
    notify::ready();
    assert_eq!(next(), "READY=1\n");
    notify::status("serving /run/user/1000/archy.sock");
    assert_eq!(next(), "STATUS=serving /run/user/1000/archy.sock\n");
    notify::stopping();
    assert_eq!(next(), "STOPPING=1\n");

    // A watchdog for another pid is not ours.
    unsafe { std::env::set_var("WATCHDOG_USEC", "200000") };
    unsafe { std::env::set_var("WATCHDOG_PID", "1") };
    assert!(notify::spawn_watchdog().is_none());
    unsafe { std::env::set_var("WATCHDOG_PID", std::process::id().to_string()) };
    assert_eq!(
        notify::watchdog_interval(),
        Some(Duration::from_millis(100))
    );
    let watchdog = notify::spawn_watchdog().unwrap();
    let socket = socket.try_clone().unwrap();
    let pings = tokio::task::spawn_blocking(move || [recv(&socket), recv(&socket)])
        .await
        .unwrap();
    assert_eq!(pings, ["WATCHDOG=1\n", "WATCHDOG=1\n"]);
    watchdog.abort();
}

fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}
