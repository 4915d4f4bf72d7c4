module weft.dev/sdk/go

go 1.24
