//! Getting the listening socket: from systemd (socket activation) or by binding the path.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};

/// The listening socket the daemon serves, and where it came from.
#[derive(Debug)]
pub struct Acquired {
    /// Non-blocking, ready for `tokio::net::UnixListener::from_std`.
    pub listener: UnixListener,
    /// True when systemd passed the socket in (`LISTEN_FDS`); such a socket is never unlinked.
    pub activated: bool,
    /// Unlinks the self-bound socket file when dropped; `None` when socket-activated.
    /// Keep it alive for as long as the socket is served.
    pub guard: Option<SocketGuard>,
}

/// Takes the socket systemd passed in, else binds `path` (see [`bind`]).
///
/// Call it from plain `fn main()` before any runtime or thread starts: listenfd edits the
/// process environment (`LISTEN_*`), which is only sound while single-threaded.
pub fn acquire(path: &Path) -> io::Result<Acquired> {
    if let Some(listener) = listenfd::ListenFd::from_env().take_unix_listener(0)? {
        listener.set_nonblocking(true)?;
        return Ok(Acquired {
            listener,
            activated: true,
            guard: None,
        });
    }
    bind(path)
}

/// Binds `path` itself: creates a missing parent directory (0700), refuses if a live daemon
/// answers there, removes a stale socket file, binds and makes the socket 0600.
pub fn bind(path: &Path) -> io::Result<Acquired> {
    if let Some(parent) = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match probe(path)? {
            Probe::Live(pid) => {
                let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another archy-executor is serving {}{who}", path.display()),
                ));
            }
            Probe::Stale => fs::remove_file(path).or_else(ignore_not_found)?,
        },
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; remove it or choose another path",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display())))?;
    // bind() honours the umask (often 0022 → 0755); only the owner may connect.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let meta = fs::symlink_metadata(path)?;
    let guard = SocketGuard {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok(Acquired {
        listener,
        activated: false,
        guard: Some(guard),
    })
}

/// Removes the socket file this process bound, when dropped.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    // Identity of the file we created: a successor may have replaced it, and its socket
    // must not be removed by us.
    dev: u64,
    ino: u64,
}

impl SocketGuard {
    /// The bound path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == (self.dev, self.ino)
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Where the daemon listens: `$ARCHY_SOCKET`, else `$XDG_RUNTIME_DIR/archy.sock`, else
/// `/run/user/UID/archy.sock`.
pub fn default_socket_path() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var("ARCHY_SOCKET") {
        return PathBuf::from(p);
    }
    let runtime = var("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::geteuid())));
    runtime.join("archy.sock")
}

enum Probe {
    /// Something accepts connections there; the pid of its owner when the kernel tells.
    Live(Option<i32>),
    Stale,
}

/// Tries to connect to an existing socket file without ever blocking.
fn probe(path: &Path) -> io::Result<Probe> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    match socket::connect(fd.as_raw_fd(), &addr) {
        Ok(()) => {
            let pid = socket::getsockopt(&fd, sockopt::PeerCredentials)
                .ok()
                .map(|c| c.pid());
            Ok(Probe::Live(pid.filter(|&p| p > 0)))
        }
        // A full backlog: someone listens but is busy.
        Err(Errno::EAGAIN) => Ok(Probe::Live(None)),
        Err(Errno::ECONNREFUSED | Errno::ENOENT) => Ok(Probe::Stale),
        Err(e) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot check existing socket {}: {e}", path.display()),
        )),
    }
}

fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}
