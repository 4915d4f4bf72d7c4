module weft.dev/tests/go-probe

go 1.24
