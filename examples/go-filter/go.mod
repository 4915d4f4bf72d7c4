module weft.dev/examples/go-filter

go 1.24

require weft.dev/sdk/go v0.0.0

replace weft.dev/sdk/go => ../../sdk/go
