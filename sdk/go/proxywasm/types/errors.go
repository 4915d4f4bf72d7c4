package types

// Status is a proxy-wasm hostcall result code.
type Status uint32

const (
	StatusOK                   Status = 0
	StatusNotFound             Status = 1
	StatusBadArgument          Status = 2
	StatusSerializationFailure Status = 3
	StatusParseFailure         Status = 4
	StatusInvalidMemoryAccess  Status = 6
	StatusEmpty                Status = 7
	StatusCasMismatch          Status = 8
	StatusInternalFailure      Status = 10
	StatusUnimplemented        Status = 12
)

// String names the status as the spec does.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "Ok"
	case StatusNotFound:
		return "NotFound"
	case StatusBadArgument:
		return "BadArgument"
	case StatusSerializationFailure:
		return "SerializationFailure"
	case StatusParseFailure:
		return "ParseFailure"
	case StatusInvalidMemoryAccess:
		return "InvalidMemoryAccess"
	case StatusEmpty:
		return "Empty"
	case StatusCasMismatch:
		return "CasMismatch"
	case StatusInternalFailure:
		return "InternalFailure"
	case StatusUnimplemented:
		return "Unimplemented"
	}
	return "Status(" + utoa(uint64(s)) + ")"
}

// StatusError is the error a hostcall returns when the host answers with a
// status other than Ok. Compare with errors.Is against the ErrorStatus*
// values.
type StatusError struct {
	Status Status
}

func (e *StatusError) Error() string { return "proxy-wasm status " + e.Status.String() }

// Is matches another *StatusError with the same status.
func (e *StatusError) Is(target error) bool {
	t, ok := target.(*StatusError)
	return ok && t.Status == e.Status
}

var (
	ErrorStatusNotFound             error = &StatusError{StatusNotFound}
	ErrorStatusBadArgument          error = &StatusError{StatusBadArgument}
	ErrorStatusSerializationFailure error = &StatusError{StatusSerializationFailure}
	ErrorStatusParseFailure         error = &StatusError{StatusParseFailure}
	ErrorStatusInvalidMemoryAccess  error = &StatusError{StatusInvalidMemoryAccess}
	ErrorStatusEmpty                error = &StatusError{StatusEmpty}
	ErrorStatusCasMismatch          error = &StatusError{StatusCasMismatch}
	ErrorStatusInternalFailure      error = &StatusError{StatusInternalFailure}
	ErrorStatusUnimplemented        error = &StatusError{StatusUnimplemented}
)

// StatusToError turns a raw status into nil (Ok) or a *StatusError.
func StatusToError(s Status) error {
	if s == StatusOK {
		return nil
	}
	return &StatusError{s}
}
