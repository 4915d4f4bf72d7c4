// Package codec encodes and decodes the byte formats of the proxy-wasm ABI:
// header maps (pairs), property paths, and property values.
package codec

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// SerializeMap encodes header pairs in the proxy-wasm map format:
// u32 count, then (u32 key length, u32 value length) per pair, then each
// key and value followed by a NUL byte; integers little-endian.
func SerializeMap(pairs [][2]string) []byte {
	size := 4
	for _, kv := range pairs {
		size += 8 + len(kv[0]) + 1 + len(kv[1]) + 1
	}
	b := make([]byte, 0, size)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pairs)))
	for _, kv := range pairs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[0])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[1])))
	}
	for _, kv := range pairs {
		b = append(b, kv[0]...)
		b = append(b, 0)
		b = append(b, kv[1]...)
		b = append(b, 0)
	}
	return b
}

// ErrMalformedMap reports map data that does not follow the pairs format.
var ErrMalformedMap = errors.New("malformed proxy-wasm header map")

func malformed(why string) error {
	return &mapError{why}
}

type mapError struct{ why string }

func (e *mapError) Error() string { return ErrMalformedMap.Error() + ": " + e.why }
func (e *mapError) Unwrap() error { return ErrMalformedMap }

// DeserializeMap decodes the proxy-wasm map format. Empty data is an empty
// map. Every length is checked against the data; a missing NUL after a
// key or value is an error.
func DeserializeMap(data []byte) ([][2]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if len(data) < 4 {
		return nil, malformed("shorter than its 4-byte pair count")
	}
	count := uint64(binary.LittleEndian.Uint32(data))
	sizesEnd := 4 + count*8
	if sizesEnd > uint64(len(data)) {
		return nil, malformed(strconv.FormatUint(count, 10) + " pairs announced but only " +
			strconv.Itoa(len(data)) + " bytes")
	}
	out := make([][2]string, 0, count)
	p := sizesEnd
	for i := uint64(0); i < count; i++ {
		kl := uint64(binary.LittleEndian.Uint32(data[4+i*8:]))
		vl := uint64(binary.LittleEndian.Uint32(data[8+i*8:]))
		if p+kl+1+vl+1 > uint64(len(data)) {
			return nil, malformed("pair " + strconv.FormatUint(i, 10) + " runs past the end")
		}
		key := data[p : p+kl]
		if data[p+kl] != 0 {
			return nil, malformed("key of pair " + strconv.FormatUint(i, 10) + " is not NUL-terminated")
		}
		p += kl + 1
		value := data[p : p+vl]
		if data[p+vl] != 0 {
			return nil, malformed("value of pair " + strconv.FormatUint(i, 10) + " is not NUL-terminated")
		}
		p += vl + 1
		out = append(out, [2]string{string(key), string(value)})
	}
	return out, nil
}

// SerializePropertyPath joins path segments with NUL bytes, as
// proxy_get_property and proxy_set_property take them
// (["request", "path"] → "request\x00path").
func SerializePropertyPath(path []string) []byte {
	if len(path) == 0 {
		return []byte{}
	}
	size := len(path) - 1
	for _, s := range path {
		size += len(s)
	}
	b := make([]byte, 0, size)
	for i, s := range path {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, s...)
	}
	return b
}

// ErrBadPropertyValue reports a property value of the wrong encoding.
var ErrBadPropertyValue = errors.New("property value has the wrong size")

// PropertyInt64 decodes an integer property (8 bytes little-endian, as
// Envoy and weft encode e.g. source.port and response.code).
func PropertyInt64(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, ErrBadPropertyValue
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}

// PropertyBool decodes a boolean property (one byte, 0 or 1).
func PropertyBool(b []byte) (bool, error) {
	if len(b) != 1 {
		return false, ErrBadPropertyValue
	}
	return b[0] != 0, nil
}
