//! A minimal RPyC classic client on [`Connection`]: enough to ping, get the
//! root, import a module, fetch an attribute, call, and release what it got.
//!
//! No thread serves the connection: a thread in `sync_request` reads its own
//! reply when no other thread is reading, so plain calls need none. The
//! client offers no service of its own; a server that calls back into it
//! gets an exception (the callback workload uses the stock Python client).

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::{BenchError, Result};
use rpycd::connection::{Config, Connection, Reply};
use rpycd::protocol::brine::Value;
use rpycd::protocol::message::{Boxed, Handler, IdPack, RemoteException};

/// rpyc's default ping payload (`Connection.ping`): the same bytes the
/// stock Python client sends, so Rust and Python ping figures compare.
pub fn default_ping_data() -> Value {
    Value::str("abcdefghijklmnopqrstuvwxyz".repeat(20))
}

pub struct Client {
    conn: Arc<Connection>,
    /// A handle on the socket, so a watchdog can end a call that hangs.
    stream: TcpStream,
}

impl Client {
    /// Connects over TCP with Nagle off, as rpyc's `SocketStream` does.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let reader = stream.try_clone()?;
        let writer = stream.try_clone()?;
        let closer = stream.try_clone()?;
        let conn = Connection::new(
            Box::new(reader),
            Box::new(writer),
            Box::new(move |how| {
                // the peer may be gone already: nothing left to shut then
                let _ = closer.shutdown(how);
            }),
            Config::default(),
        );
        Ok(Client { conn, stream })
    }

    /// A second handle on the socket, for a watchdog to shut it down.
    pub fn stream_handle(&self) -> Result<TcpStream> {
        Ok(self.stream.try_clone()?)
    }

    /// Sends a request and waits for its reply.
    pub fn request(&self, handler: Handler, args: Boxed) -> Result<Boxed> {
        reply_value(self.conn.sync_request(handler, args)?)
    }

    /// PING, checking the echo as rpyc's `ping` does.
    pub fn ping(&self, data: &Value) -> Result<()> {
        let echo = self.request(
            Handler::Ping,
            Boxed::Value(Value::Tuple(vec![data.clone()])),
        )?;
        match echo {
            Boxed::Value(value) if &value == data => Ok(()),
            other => Err(BenchError::Unexpected(format!(
                "ping echo differs: {other:?}"
            ))),
        }
    }

    pub fn root(&self) -> Result<IdPack> {
        remote_ref(self.request(Handler::GetRoot, Boxed::Value(Value::Tuple(vec![])))?)
    }

    /// `root.getmodule(name)`, the classic way to import on the server.
    pub fn getmodule(&self, root: &IdPack, name: &str) -> Result<IdPack> {
        remote_ref(self.callattr(root, "getmodule", vec![Boxed::Value(Value::str(name))])?)
    }

    pub fn getattr(&self, obj: &IdPack, name: &str) -> Result<Boxed> {
        self.request(
            Handler::GetAttr,
            Boxed::Tuple(vec![
                Boxed::LocalRef(obj.clone()),
                Boxed::Value(Value::str(name)),
            ]),
        )
    }

    /// `obj(*args)`.
    pub fn call(&self, obj: &IdPack, args: Vec<Boxed>) -> Result<Boxed> {
        self.request(
            Handler::Call,
            Boxed::Tuple(vec![
                Boxed::LocalRef(obj.clone()),
                Boxed::Tuple(args),
                Boxed::Value(Value::Tuple(vec![])),
            ]),
        )
    }

    /// `obj.name(*args)` in one round trip.
    pub fn callattr(&self, obj: &IdPack, name: &str, args: Vec<Boxed>) -> Result<Boxed> {
        self.request(
            Handler::CallAttr,
            Boxed::Tuple(vec![
                Boxed::LocalRef(obj.clone()),
                Boxed::Value(Value::str(name)),
                Boxed::Tuple(args),
                Boxed::Value(Value::Tuple(vec![])),
            ]),
        )
    }

    /// Releases one reference the server counted for us (DEL), as a
    /// client's netref does when it is collected.
    pub fn release(&self, obj: &IdPack) -> Result<()> {
        self.request(
            Handler::Del,
            Boxed::Tuple(vec![
                Boxed::LocalRef(obj.clone()),
                Boxed::Value(Value::Int(1)),
            ]),
        )
        .map(drop)
    }

    /// Says goodbye as rpyc does (CLOSE, never answered) and closes.
    pub fn close(self) {
        // the server may be gone already: the connection is closed either way
        let _ = self
            .conn
            .async_request(Handler::Close, Boxed::Value(Value::Tuple(vec![])));
        self.conn.close();
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // a client dropped without `close` (an error path) must not leave
        // its socket open for the rest of the run
        self.conn.close();
    }
}

fn reply_value(reply: Reply) -> Result<Boxed> {
    reply.map_err(|exception| {
        BenchError::Remote(match exception {
            RemoteException::Raised(info) => {
                format!("{}.{}: {:?}", info.module, info.name, info.args)
            }
            other => format!("{other:?}"),
        })
    })
}

fn remote_ref(boxed: Boxed) -> Result<IdPack> {
    match boxed {
        Boxed::RemoteRef(pack) => Ok(pack),
        other => Err(BenchError::Unexpected(format!(
            "expected an object reference, got {other:?}"
        ))),
    }
}

/// `math.sqrt` fetched once, the way a user caches a netref, then called.
pub struct CachedCall {
    pub function: IdPack,
    /// What to release when done: the module and the function.
    held: Vec<IdPack>,
}

impl CachedCall {
    /// GETROOT, `getmodule("math")`, GETATTR `sqrt`.
    pub fn sqrt(client: &Client) -> Result<CachedCall> {
        let root = client.root()?;
        let math = client.getmodule(&root, "math")?;
        let function = remote_ref(client.getattr(&math, "sqrt")?)?;
        Ok(CachedCall {
            function: function.clone(),
            held: vec![root, math, function],
        })
    }

    /// `sqrt(2.0)`, checked.
    pub fn call(&self, client: &Client) -> Result<()> {
        match client.call(&self.function, vec![Boxed::Value(Value::Float(2.0))])? {
            Boxed::Value(Value::Float(x)) if (x - std::f64::consts::SQRT_2).abs() < 1e-12 => Ok(()),
            other => Err(BenchError::Unexpected(format!("sqrt(2.0) = {other:?}"))),
        }
    }

    /// Releases the references, newest first.
    pub fn release(self, client: &Client) -> Result<()> {
        self.held
            .iter()
            .rev()
            .try_for_each(|pack| client.release(pack))
    }
}
