//! Spin's host interfaces that the edge component imports, emulated over `KvData` and the
//! resolved variables: `fermyon:spin/variables@2.0.0`, `fermyon:spin/key-value@2.0.0` and
//! `wasi:keyvalue/{store,atomics}@0.2.0-draft2` (the latter with compare-and-swap);
//! `fermyon:spin/redis@2.0.0` is in `outbound_redis`. Bindings come from the vendored Spin WIT
//! in `wit/`.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::kv::KvData;

wasmtime::component::bindgen!({
    path: "../../wit",
    inline: "
        package eindr:spin-test-host;
        world host {
            import fermyon:spin/variables@2.0.0;
            import fermyon:spin/key-value@2.0.0;
            import wasi:keyvalue/store@0.2.0-draft2;
            import wasi:keyvalue/atomics@0.2.0-draft2;
            import fermyon:spin/redis@2.0.0;
        }
    ",
    // Redis calls are network I/O: async, as in Spin, so a slow Redis holds no thread.
    imports: { "fermyon:spin/redis": async | trappable },
    with: {
        "fermyon:spin/redis.connection": crate::outbound_redis::RedisConnection,
        "fermyon:spin/key-value.store": OpenStore,
        "wasi:keyvalue/store.bucket": OpenStore,
        "wasi:keyvalue/atomics.cas": PendingCas,
    },
});

use fermyon::spin2_0_0::{key_value, variables};
use wasi::keyvalue::{atomics, store};

/// A store the component opened.
pub struct OpenStore {
    label: String,
}

/// A compare-and-swap in progress: the record as it was read.
pub struct PendingCas {
    label: String,
    key: String,
    seen: Option<Vec<u8>>,
}

/// What every instance shares.
pub struct Shared {
    pub kv: KvData,
    pub stores: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub variables: HashMap<String, Result<String, String>>,
}

/// Per-request state of one instance.
pub struct HostState {
    pub shared: Arc<Shared>,
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    variables::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    key_value::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    store::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    atomics::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    fermyon::spin2_0_0::redis::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

impl HostState {
    fn label(&self, store: &Resource<OpenStore>) -> Result<String, String> {
        self.table
            .get(store)
            .map(|s| s.label.clone())
            .map_err(|e| e.to_string())
    }

    fn may_open(&self, label: &str) -> bool {
        self.shared.stores.iter().any(|s| s == label)
    }
}

impl variables::Host for HostState {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        match self.shared.variables.get(&name) {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(message)) => Err(variables::Error::Provider(message.clone())),
            None => Err(variables::Error::Undefined(format!(
                "no variable for key: {name}"
            ))),
        }
    }
}

fn kv_error(message: String) -> key_value::Error {
    key_value::Error::Other(message)
}

impl key_value::Host for HostState {}

impl key_value::HostStore for HostState {
    fn open(&mut self, label: String) -> Result<Resource<OpenStore>, key_value::Error> {
        if !self.may_open(&label) {
            return Err(key_value::Error::AccessDenied);
        }
        self.table
            .push(OpenStore { label })
            .map_err(|e| kv_error(e.to_string()))
    }

    fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, key_value::Error> {
        let label = self.label(&store).map_err(kv_error)?;
        self.shared.kv.get(&label, &key).map_err(kv_error)
    }

    fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), key_value::Error> {
        let label = self.label(&store).map_err(kv_error)?;
        self.shared.kv.set(&label, &key, &value).map_err(kv_error)
    }

    fn delete(&mut self, store: Resource<OpenStore>, key: String) -> Result<(), key_value::Error> {
        let label = self.label(&store).map_err(kv_error)?;
        self.shared.kv.delete(&label, &key).map_err(kv_error)
    }

    fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<bool, key_value::Error> {
        let label = self.label(&store).map_err(kv_error)?;
        self.shared
            .kv
            .get(&label, &key)
            .map(|v| v.is_some())
            .map_err(kv_error)
    }

    fn get_keys(&mut self, store: Resource<OpenStore>) -> Result<Vec<String>, key_value::Error> {
        let label = self.label(&store).map_err(kv_error)?;
        self.shared.kv.keys(&label).map_err(kv_error)
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

fn store_error(message: String) -> store::Error {
    store::Error::Other(message)
}

impl store::Host for HostState {
    fn open(&mut self, identifier: String) -> Result<Resource<OpenStore>, store::Error> {
        if !self.may_open(&identifier) {
            return Err(store::Error::AccessDenied);
        }
        self.table
            .push(OpenStore { label: identifier })
            .map_err(|e| store_error(e.to_string()))
    }
}

impl store::HostBucket for HostState {
    fn get(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        let label = self.label(&bucket).map_err(store_error)?;
        self.shared.kv.get(&label, &key).map_err(store_error)
    }

    fn set(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        let label = self.label(&bucket).map_err(store_error)?;
        self.shared
            .kv
            .set(&label, &key, &value)
            .map_err(store_error)
    }

    fn delete(&mut self, bucket: Resource<OpenStore>, key: String) -> Result<(), store::Error> {
        let label = self.label(&bucket).map_err(store_error)?;
        self.shared.kv.delete(&label, &key).map_err(store_error)
    }

    fn exists(&mut self, bucket: Resource<OpenStore>, key: String) -> Result<bool, store::Error> {
        let label = self.label(&bucket).map_err(store_error)?;
        self.shared
            .kv
            .get(&label, &key)
            .map(|v| v.is_some())
            .map_err(store_error)
    }

    fn list_keys(
        &mut self,
        bucket: Resource<OpenStore>,
        _cursor: Option<String>,
    ) -> Result<store::KeyResponse, store::Error> {
        let label = self.label(&bucket).map_err(store_error)?;
        let keys = self.shared.kv.keys(&label).map_err(store_error)?;
        Ok(store::KeyResponse { keys, cursor: None })
    }

    fn drop(&mut self, bucket: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    fn increment(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        let label = self.label(&bucket).map_err(store_error)?;
        self.shared
            .kv
            .increment(&label, &key, delta)
            .map_err(store_error)
    }

    fn swap(&mut self, cas: Resource<PendingCas>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let pending = self
            .table
            .delete(cas)
            .map_err(|e| atomics::CasError::StoreError(store_error(e.to_string())))?;
        match self.shared.kv.compare_and_swap(
            &pending.label,
            &pending.key,
            pending.seen.as_deref(),
            &value,
        ) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(latest)) => {
                // The spec: a failed swap hands back a CAS on the latest value.
                let retry = self
                    .table
                    .push(PendingCas {
                        seen: latest,
                        ..pending
                    })
                    .map_err(|e| atomics::CasError::StoreError(store_error(e.to_string())))?;
                Err(atomics::CasError::CasFailed(retry))
            }
            Err(message) => Err(atomics::CasError::StoreError(store_error(message))),
        }
    }
}

impl atomics::HostCas for HostState {
    fn new(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> Result<Resource<PendingCas>, store::Error> {
        let label = self.label(&bucket).map_err(store_error)?;
        let seen = self.shared.kv.get(&label, &key).map_err(store_error)?;
        self.table
            .push(PendingCas { label, key, seen })
            .map_err(|e| store_error(e.to_string()))
    }

    fn current(&mut self, cas: Resource<PendingCas>) -> Result<Option<Vec<u8>>, store::Error> {
        self.table
            .get(&cas)
            .map(|c| c.seen.clone())
            .map_err(|e| store_error(e.to_string()))
    }

    fn drop(&mut self, cas: Resource<PendingCas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}
