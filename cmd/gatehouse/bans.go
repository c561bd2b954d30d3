package main

import "net/http"

// adminBans adds the ban endpoints (filled in with the abuse defence).
func (d *daemon) adminBans(mux *http.ServeMux) {}
