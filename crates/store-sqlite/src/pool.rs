//! A small pool of read-only connections. WAL readers never block the writer.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;
use sealgate_store::StoreError;

pub(crate) struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

pub(crate) struct Pooled<'a> {
    conn: Option<Connection>,
    pool: &'a Pool,
}

impl Pool {
    pub(crate) fn new(path: PathBuf, max_idle: usize) -> Pool {
        Pool {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    pub(crate) fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some(c) => c,
            None => crate::open_reader(&self.path)?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
        })
    }
}

impl Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Present from construction until drop.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("pooled connection taken before drop"))
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.pool.idle.lock()) {
            if idle.len() < self.pool.max_idle {
                idle.push(conn);
            }
        }
    }
}
