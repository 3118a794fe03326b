//! `fermyon:spin/redis@2.0.0` against a real Redis, as Spin 3 implements it: `open` checks the
//! address against the component's `allowed_outbound_hosts` and makes a multiplexed connection
//! (the `redis` crate's default timeouts, as Spin's); `execute` runs any command and answers
//! with the reply flattened (arrays spread out, nil kept) as Spin's host does.

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig, Value};
use wasmtime::component::Resource;

use crate::host::HostState;
use crate::host::fermyon::spin2_0_0::redis::{
    self as spin_redis, Error, RedisParameter, RedisResult,
};

/// A connection the component opened.
pub struct RedisConnection {
    connection: MultiplexedConnection,
}

fn other(error: redis::RedisError) -> Error {
    Error::Other(error.to_string())
}

/// `scheme`, host and port of a Redis address or an `allowed_outbound_hosts` entry
/// (`redis://user:pw@host:port/db`; port 6379 when absent; `*` as a wildcard).
fn origin(address: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = address.split_once("://")?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    Some(match host_port.rsplit_once(':') {
        Some((host, port)) => (scheme, host, port),
        None => (scheme, host_port, "6379"),
    })
}

/// Spin refuses an address that no `allowed_outbound_hosts` entry names.
fn allowed(address: &str, entries: &[String]) -> bool {
    let Some((scheme, host, port)) = origin(address) else {
        return false;
    };
    entries
        .iter()
        .filter_map(|e| origin(e))
        .any(|(s, h, p)| s == scheme && (h == "*" || h == host) && (p == "*" || p == port))
}

fn flatten(value: Value, out: &mut Vec<RedisResult>) -> Result<(), Error> {
    match value {
        Value::Nil => out.push(RedisResult::Nil),
        Value::Int(n) => out.push(RedisResult::Int64(n)),
        Value::BulkString(bytes) => out.push(RedisResult::Binary(bytes)),
        Value::SimpleString(status) => out.push(RedisResult::Status(status)),
        Value::Okay => out.push(RedisResult::Status("OK".into())),
        Value::Array(values) | Value::Set(values) => {
            for value in values {
                flatten(value, out)?;
            }
        }
        Value::ServerError(e) => return Err(Error::Other(format!("{e:?}"))),
        other => return Err(Error::Other(format!("unsupported reply {other:?}"))),
    }
    Ok(())
}

impl HostState {
    fn redis(
        &mut self,
        connection: &Resource<RedisConnection>,
    ) -> Result<MultiplexedConnection, Error> {
        self.table
            .get(connection)
            .map(|c| c.connection.clone())
            .map_err(|e| Error::Other(e.to_string()))
    }
}

impl spin_redis::Host for HostState {}

impl spin_redis::HostConnection for HostState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        if !allowed(&address, &self.shared.allowed_outbound_hosts) {
            return Ok(Err(Error::InvalidAddress));
        }
        let client = match redis::Client::open(address.as_str()) {
            Ok(client) => client,
            Err(_) => return Ok(Err(Error::InvalidAddress)),
        };
        let connection = match client
            .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
            .await
        {
            Ok(connection) => connection,
            Err(e) => return Ok(Err(other(e))),
        };
        Ok(self
            .table
            .push(RedisConnection { connection })
            .map_err(|_| Error::TooManyConnections))
    }

    async fn publish(
        &mut self,
        connection: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            c.publish::<_, _, ()>(channel, payload).await.map_err(other)
        }
        .await)
    }

    async fn get(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            c.get(key).await.map_err(other)
        }
        .await)
    }

    async fn set(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            c.set::<_, _, ()>(key, value).await.map_err(other)
        }
        .await)
    }

    async fn incr(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            c.incr(key, 1).await.map_err(other)
        }
        .await)
    }

    async fn del(
        &mut self,
        connection: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            c.del(keys).await.map_err(other)
        }
        .await)
    }

    async fn sadd(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            c.sadd(key, values).await.map_err(other)
        }
        .await)
    }

    async fn smembers(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            c.smembers(key).await.map_err(other)
        }
        .await)
    }

    async fn srem(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            c.srem(key, values).await.map_err(other)
        }
        .await)
    }

    async fn execute(
        &mut self,
        connection: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        Ok(async {
            let mut c = self.redis(&connection)?;
            let mut cmd = redis::cmd(&command);
            for argument in arguments {
                match argument {
                    RedisParameter::Int64(n) => cmd.arg(n),
                    RedisParameter::Binary(bytes) => cmd.arg(bytes),
                };
            }
            let reply: Value = cmd.query_async(&mut c).await.map_err(other)?;
            let mut out = Vec::new();
            flatten(reply, &mut out)?;
            Ok(out)
        }
        .await)
    }

    async fn drop(&mut self, connection: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn only_listed_redis_addresses_open() {
        let entries = [
            "redis://127.0.0.1:*".to_owned(),
            "http://localhost:*".to_owned(),
        ];
        assert!(allowed("redis://127.0.0.1:6390", &entries));
        assert!(allowed("redis://:pw@127.0.0.1:7000/2", &entries));
        assert!(allowed("redis://127.0.0.1", &entries));
        assert!(!allowed("redis://10.0.0.1:6379", &entries));
        assert!(!allowed("rediss://127.0.0.1:6379", &entries));
        assert!(!allowed("redis://localhost:6379", &entries));
        assert!(!allowed("not an address", &entries));
        assert!(allowed("redis://cache:6379", &["redis://cache".to_owned()]));
        assert!(!allowed(
            "redis://cache:6380",
            &["redis://cache".to_owned()]
        ));
    }
}
