//! weft-oci: Wasm filters as OCI artifacts. Work in progress.
