//! The bounded connection pool: permits for live sockets, and a handle to shut a socket
//! down from outside its session.
//!
//! Why a socket handle: the broker evicts sessions it cannot deliver to (a full outbox,
//! or silence past `client_timeout`) from its own thread, and the one thing that ends a
//! connection from outside whatever its session is doing is the kernel. The HTTP service
//! records a [`ConnHandle`] for every accepted TCP connection (`on_connect_ext`); the
//! broker calls [`ConnHandle::shutdown`]. The kernel then fails the pending write and
//! reports EOF, and the session (which owns the socket, `session::transport`) ends, the
//! actor with it. The handle holds only the fd number and the socket's `SO_COOKIE`
//! (unique per socket for the life of the kernel), checked before acting, so a
//! handle that outlived its socket can never shut down an unrelated one that reused the
//! fd. We do not `dup` the fd: that would double the file descriptors per client, and
//! the open-file limit is what bounds how many clients one process can hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts live WebSocket connections against `max_connections`.
#[derive(Debug)]
pub struct Pool {
    max: usize,
    active: AtomicUsize,
}

impl Pool {
    pub fn new(max: usize) -> Arc<Pool> {
        Arc::new(Pool {
            max,
            active: AtomicUsize::new(0),
        })
    }

    /// Takes a slot, or `None` when the pool is full. The slot is freed when the permit
    /// is dropped, which happens exactly once per connection.
    pub fn try_acquire(self: &Arc<Self>) -> Option<PoolPermit> {
        let mut current = self.active.load(Ordering::Relaxed);
        loop {
            if current >= self.max {
                return None;
            }
            match self.active.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(PoolPermit {
                        pool: Arc::clone(self),
                    })
                }
                Err(seen) => current = seen,
            }
        }
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// One slot of the [`Pool`]; dropping it frees the slot.
#[derive(Debug)]
pub struct PoolPermit {
    pool: Arc<Pool>,
}

impl Drop for PoolPermit {
    fn drop(&mut self) {
        self.pool.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Identifies one accepted TCP socket so it can be shut down from another actor.
/// Deliberately not `Copy`: it names a descriptor it does not own, so each copy is
/// made on purpose (the session's, the broker's), and every use goes through
/// [`ConnHandle::shutdown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnHandle {
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    cookie: u64,
}

impl ConnHandle {
    /// Records the socket of a freshly accepted connection.
    #[cfg(unix)]
    pub fn from_stream<S: std::os::fd::AsFd + std::os::fd::AsRawFd>(stream: &S) -> Option<Self> {
        let cookie = socket_cookie(stream.as_fd())?;
        Some(ConnHandle {
            fd: stream.as_raw_fd(),
            cookie,
        })
    }

    #[cfg(not(unix))]
    pub fn from_stream<S>(_stream: &S) -> Option<Self> {
        None
    }

    /// Shuts the socket down (both directions) if it is still the socket this handle
    /// was made for. Returns whether it did.
    #[cfg(unix)]
    pub fn shutdown(&self) -> bool {
        let fd = borrow_unowned(self.fd);
        if socket_cookie(fd) != Some(self.cookie) {
            return false;
        }
        socket2::SockRef::from(&fd)
            .shutdown(std::net::Shutdown::Both)
            .is_ok()
    }

    #[cfg(not(unix))]
    pub fn shutdown(&self) -> bool {
        false
    }
}

/// The one unsafe step: a `BorrowedFd` for a descriptor this process may no longer
/// hold as the socket the handle was made for.
///
/// The hazard: `BorrowedFd::borrow_raw` requires the fd to stay open for the borrow's
/// lifetime, which nothing here guarantees: the connection may have closed it, and
/// another socket or file may have reused the number. What keeps it sound in practice:
/// the borrow lives for two syscalls that never close or read memory through it,
/// `getsockopt(SO_COOKIE)` (which fails harmlessly on a closed fd or a non-socket) and
/// `shutdown`, issued only when the cookie proves it is the same socket. The window
/// left, a close and a reuse of the number between those two syscalls, would need
/// another thread to close and accept within nanoseconds; we accept it and say so here.
#[cfg(unix)]
#[allow(unsafe_code)]
fn borrow_unowned(fd: std::os::fd::RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: see above: used only for the cookie check and `shutdown`.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

#[cfg(target_os = "linux")]
fn socket_cookie(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    socket2::SockRef::from(&fd).cookie().ok()
}

#[cfg(all(unix, not(target_os = "linux")))]
fn socket_cookie(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    // No kernel cookie: fall back to the 4-tuple, hashed, which is unique among live
    // connections.
    use std::hash::{Hash, Hasher};
    let sock = socket2::SockRef::from(&fd);
    let peer = sock.peer_addr().ok()?.as_socket()?;
    let local = sock.local_addr().ok()?.as_socket()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (peer, local).hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_bounded_and_freed_on_drop() {
        let pool = Pool::new(2);
        let a = pool.try_acquire().expect("first");
        let b = pool.try_acquire().expect("second");
        assert!(pool.try_acquire().is_none());
        assert_eq!(pool.active(), 2);
        drop(a);
        assert_eq!(pool.active(), 1);
        let c = pool.try_acquire().expect("freed slot is reusable");
        drop((b, c));
        assert_eq!(pool.active(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn shutdown_acts_only_on_the_same_socket() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        let (server_side, _) = listener.accept().expect("accept");
        let handle = ConnHandle::from_stream(&server_side).expect("cookie");
        assert!(handle.shutdown());
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).expect("eof"), 0, "client sees EOF");
        drop(server_side);
        // The fd is closed now (and may be reused): the handle must refuse.
        let _other = std::net::TcpStream::connect(addr).expect("connect");
        let (_reused, _) = listener.accept().expect("accept");
        assert!(!handle.shutdown());
    }
}
