package proxy

import (
	"net/http"

	"github.com/gatehouse-proxy/gatehouse/internal/reqpath"
)

// Path normalisation is package reqpath (its doc says what is normalised
// and why). These names remain for outhead.go's call sites; call reqpath
// directly elsewhere.

func normalizePath(raw string) (fwd, match, reason string) { return reqpath.Normalize(raw) }

func requestPath(r *http.Request) (path, rest string) { return reqpath.Split(r) }

func wireSafeQuery(q string) string { return reqpath.WireSafeQuery(q) }
