package tomlstruct_test

import (
	"fmt"

	"github.com/BurntSushi/toml"

	"github.com/gatehouse-proxy/gatehouse/internal/tomlstruct"
)

func ExampleDecoder() {
	src := `[server]
address = "127.0.0.1:8080"
timeout = "5s"
colour = "red"
`
	var raw struct {
		Server struct {
			Address string `toml:"address"`
			Timeout string `toml:"timeout"`
		} `toml:"server"`
	}
	var tree map[string]any
	if _, err := toml.Decode(src, &tree); err != nil {
		panic(err)
	}
	lines := tomlstruct.ScanLines(src)
	d := tomlstruct.Decoder{Report: func(key, msg string) {
		fmt.Printf("%d: %s: %s\n", lines.Line(key), key, msg)
	}}
	d.Decode(tree, &raw)
	fmt.Println(raw.Server.Address)
	// Output:
	// 4: server.colour: unknown key
	// 127.0.0.1:8080
}
