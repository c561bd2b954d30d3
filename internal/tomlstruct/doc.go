// Package tomlstruct maps TOML documents onto tagged Go structs strictly,
// for configuration files whose every mistake must be reported with the
// key path and line it is on.
//
// The TOML library (github.com/BurntSushi/toml) parses the document into a
// tree; a Decoder then fills the struct from that tree one value at a
// time, reporting each bad value (an unknown key, a wrong type, a number
// out of range, a value its UnmarshalTOML or UnmarshalText rejects) with
// its key path, and going on with the next. ScanLines maps every key path
// of the document to the line it is defined on, so that the caller can put
// a line on these problems and on its own validation errors:
//
//	lines := tomlstruct.ScanLines(src)
//	d := tomlstruct.Decoder{Report: func(key, msg string) {
//		fmt.Printf("%d: %s: %s\n", lines.Line(key), key, msg)
//	}}
//	d.Decode(tree, &raw)
//
// The package knows nothing of what the keys mean: defaults and validation
// are the caller's.
package tomlstruct
