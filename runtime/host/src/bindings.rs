//! Host bindings generated from `wit/connector.wit` (the only copy of the contract).

wasmtime::component::bindgen!({
    world: "connector",
    path: "../../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use exports::qiao::connector::handler;
pub use qiao::connector::{clock, http, kv, log, types};
