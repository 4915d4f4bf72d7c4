// Package hostcall is the raw proxy-wasm 0.2.1 hostcall layer with Go
// types: each function takes and returns Go values and a raw status.
//
// On GOOS=wasip1 (hostcall_wasip1.go) the functions are //go:wasmimport
// bindings of module "env" plus the memory hand-over the ABI needs
// (proxy_on_memory_allocate and the pin table). On every other platform
// (hostcall_other.go) they dispatch to Fake, a table of functions a test
// host installs, and the SDK offers its callbacks through Callbacks, so
// `go test ./...` runs on the developer's machine (see package proxytest).
package hostcall

// Raw status codes (types.Status mirrors them).
const (
	StatusOK            uint32 = 0
	StatusNotFound      uint32 = 1
	StatusBadArgument   uint32 = 2
	StatusUnimplemented uint32 = 12
	// StatusBadReturn is not an ABI status: the host handed back memory
	// that was not allocated through proxy_on_memory_allocate, or more
	// bytes than were allocated. It is reported as InvalidMemoryAccess.
	StatusBadReturn uint32 = 6
)
