// Package tomlstruct maps between TOML documents and tagged Go structs,
// for configuration files: strictly when reading, since every mistake must
// be reported with the key path and line it is on, and canonically when
// writing, so that a configuration can be printed as the file that says
// everything.
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
// Encode goes the other way: it builds a Table from a struct declared the
// same way (a type that implements Valuer writes itself as one value), in
// which the caller may drop keys before writing it out with Table.Bytes.
//
// The package knows nothing of what the keys mean: defaults and validation
// are the caller's.
package tomlstruct
