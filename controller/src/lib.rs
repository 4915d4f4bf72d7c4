//! weft-controller: WasmPlugin selection and streaming. Work in progress.
