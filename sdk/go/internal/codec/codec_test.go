package codec

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestSerializeMapLayout(t *testing.T) {
	got := SerializeMap([][2]string{{":path", "/a"}, {"x", ""}})
	want := []byte{
		2, 0, 0, 0, // count
		5, 0, 0, 0, 2, 0, 0, 0, // sizes of pair 0
		1, 0, 0, 0, 0, 0, 0, 0, // sizes of pair 1
		':', 'p', 'a', 't', 'h', 0, '/', 'a', 0,
		'x', 0, 0,
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("SerializeMap layout:\n got %v\nwant %v", got, want)
	}
}

func TestSerializeEmptyMap(t *testing.T) {
	if got := SerializeMap(nil); !bytes.Equal(got, []byte{0, 0, 0, 0}) {
		t.Fatalf("empty map = %v, want a zero count", got)
	}
}

func TestMapRoundTrip(t *testing.T) {
	pairs := [][2]string{{":method", "GET"}, {"x-multi", "a"}, {"x-multi", "b"}, {"empty", ""}, {"utf8", "héllo"}}
	got, err := DeserializeMap(SerializeMap(pairs))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, pairs) {
		t.Fatalf("round trip: got %q want %q", got, pairs)
	}
}

func TestDeserializeEmptyData(t *testing.T) {
	got, err := DeserializeMap(nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("DeserializeMap(nil) = %v, %v", got, err)
	}
	got, err = DeserializeMap([]byte{0, 0, 0, 0})
	if err != nil || len(got) != 0 {
		t.Fatalf("zero count = %v, %v", got, err)
	}
}

func TestDeserializeRejectsMalformedData(t *testing.T) {
	good := SerializeMap([][2]string{{"k", "v"}})
	noNul := append([]byte(nil), good...)
	noNul[len(noNul)-1] = 'x'
	noKeyNul := append([]byte(nil), good...)
	noKeyNul[12+1] = 'x'
	cases := map[string][]byte{
		"short count":      {1, 0},
		"count too big":    {1, 0, 0, 0},
		"huge count":       {255, 255, 255, 255},
		"truncated":        good[:len(good)-1],
		"value not NUL-ed": noNul,
		"key not NUL-ed":   noKeyNul,
		"huge key length":  {1, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0},
	}
	for name, data := range cases {
		if _, err := DeserializeMap(data); !errors.Is(err, ErrMalformedMap) {
			t.Errorf("%s: got %v, want ErrMalformedMap", name, err)
		}
	}
}

func TestSerializePropertyPath(t *testing.T) {
	cases := []struct {
		path []string
		want string
	}{
		{[]string{"request", "path"}, "request\x00path"},
		{[]string{"source", "address"}, "source\x00address"},
		{[]string{"plugin_name"}, "plugin_name"},
		{[]string{"request", "headers", "x-a"}, "request\x00headers\x00x-a"},
		{nil, ""},
	}
	for _, c := range cases {
		if got := string(SerializePropertyPath(c.path)); got != c.want {
			t.Errorf("SerializePropertyPath(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestPropertyDecoders(t *testing.T) {
	v, err := PropertyInt64([]byte{0x39, 0x30, 0, 0, 0, 0, 0, 0})
	if err != nil || v != 12345 {
		t.Fatalf("PropertyInt64 = %d, %v", v, err)
	}
	v, err = PropertyInt64([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err != nil || v != -1 {
		t.Fatalf("PropertyInt64(-1) = %d, %v", v, err)
	}
	if _, err := PropertyInt64([]byte{1, 2, 3}); !errors.Is(err, ErrBadPropertyValue) {
		t.Fatalf("short int: %v", err)
	}
	b, err := PropertyBool([]byte{1})
	if err != nil || !b {
		t.Fatalf("PropertyBool = %v, %v", b, err)
	}
	if _, err := PropertyBool(nil); !errors.Is(err, ErrBadPropertyValue) {
		t.Fatalf("empty bool: %v", err)
	}
}
