//! Where clients and the daemon look for the socket. Changes the environment, so this file
//! holds a single test.

use std::path::PathBuf;

use archy::transport::default_socket_path;

#[test]
fn socket_path_comes_from_archy_socket_then_xdg_runtime_dir_then_uid() {
    // SAFETY: the only test in this file; no other thread reads the environment.
    unsafe {
        std::env::set_var("ARCHY_SOCKET", "/tmp/elsewhere.sock");
        std::env::set_var("XDG_RUNTIME_DIR", "/run/user/4242");
    }
    assert_eq!(default_socket_path(), PathBuf::from("/tmp/elsewhere.sock"));
    unsafe { std::env::set_var("ARCHY_SOCKET", "") };
    assert_eq!(
        default_socket_path(),
        PathBuf::from("/run/user/4242/archy.sock")
    );
    unsafe {
        std::env::remove_var("ARCHY_SOCKET");
        std::env::remove_var("XDG_RUNTIME_DIR");
    }
    let uid = nix::unistd::geteuid();
    assert_eq!(
        default_socket_path(),
        PathBuf::from(format!("/run/user/{uid}/archy.sock"))
    );
}
