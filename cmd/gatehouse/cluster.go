package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/cluster"
	"github.com/gatehouse-proxy/gatehouse/config"
)

// maxPasswordFileSize bounds the Redis password file.
const maxPasswordFileSize = 64 << 10

// seedTimeout bounds the copy of the local ACME storage into an empty
// Redis at start (a few files; a Redis that is down fails at once).
const seedTimeout = 10 * time.Second

// clusterParts are the long-lived parts of [cluster], created once at
// start (a change of [cluster] needs a restart).
type clusterParts struct {
	node    *cluster.Node
	bans    *cluster.Bans
	storage *cluster.Storage // nil unless acme.storage = "cluster"
}

// newCluster builds the cluster parts of cfg; nothing contacts Redis
// yet, so an instance starts while Redis is down.
func (d *daemon) newCluster(cfg *config.Config) (*clusterParts, error) {
	c := cfg.Cluster
	o := cluster.Options{
		URL:        c.URL,
		Username:   c.Username,
		KeyPrefix:  c.KeyPrefix,
		Instance:   c.Instance,
		Version:    getVersion(),
		Timeout:    c.Timeout,
		Heartbeat:  c.Heartbeat,
		BanSync:    c.BanSync,
		Logger:     d.log,
		Registerer: d.reg,
	}
	if o.Instance == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("cluster.instance: not set, and the host name is unknown (%v)", err)
		}
		o.Instance = h
	}
	switch {
	case c.PasswordFile != "":
		b, err := config.ReadFile(c.PasswordFile, config.FileRule{MaxBytes: maxPasswordFileSize})
		if err != nil {
			return nil, fmt.Errorf("cluster.password_file: %w", err)
		}
		if o.Password = string(bytes.TrimSpace(b)); o.Password == "" {
			return nil, fmt.Errorf("cluster.password_file: %s is empty", c.PasswordFile)
		}
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if v = strings.TrimSpace(v); !ok || v == "" {
			return nil, fmt.Errorf("cluster.password_env: $%s is not set or empty", c.PasswordEnv)
		}
		o.Password = v
	}
	if c.CAFile != "" {
		pem, err := config.ReadFile(c.CAFile, config.FileRule{MaxBytes: config.MaxPEMFileSize})
		if err != nil {
			return nil, fmt.Errorf("cluster.ca_file: %w", err)
		}
		o.RootCAs = x509.NewCertPool()
		if !o.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.ca_file: no certificate in %s", c.CAFile)
		}
	}
	cluster.LogClientTo(d.log)
	n, err := cluster.New(o)
	if err != nil {
		return nil, fmt.Errorf("cluster.url: %w", err)
	}
	p := &clusterParts{node: n, bans: n.Bans()}
	if cfg.ACME.Storage == config.StorageCluster {
		dir := cfg.ACME.StorageDir
		if dir == "" {
			dir = filepath.Join(cfg.StateDir, "certmagic")
		}
		p.storage = n.Storage(dir)
		ctx, cancel := context.WithTimeout(context.Background(), seedTimeout)
		copied, err := p.storage.Seed(ctx)
		cancel()
		switch {
		case err != nil:
			d.log.Warn("cluster: Redis unreachable at start; certificates are served from the local copy until it answers", "err", err)
		case copied > 0:
			d.log.Info("cluster: the ACME storage in Redis was empty; the local copy was written to it", "keys", copied)
		}
	}
	// The URL never holds a password (config refuses one).
	d.log.Info("cluster member", "instance", o.Instance, "redis", c.URL)
	return p, nil
}

// clusterFileWarnings warns about a Redis password file open to others:
// whoever reads it may ban clients and read certificate keys in Redis.
func clusterFileWarnings(cfg *config.Config) []config.Problem {
	if cfg.Cluster == nil || cfg.Cluster.PasswordFile == "" {
		return nil
	}
	f := cfg.Cluster.PasswordFile
	if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return []config.Problem{cfg.Problemf("cluster.password_file",
			"%s is open to %s (mode %04o): whoever reads it may ban clients and read certificate keys in Redis (chmod go-rwx %s)",
			f, who(fi.Mode().Perm()&0o077), fi.Mode().Perm(), f)}
	}
	return nil
}

// clusterConfigHash is a short SHA-256 of the compiled configuration without
// what differs between instances by design (the instance name, the state
// directory, the file's own path), which /cluster shows so that an
// instance running another configuration stands out. Comments and
// layout of the file do not change it.
func clusterConfigHash(cfg *config.Config) string {
	c := *cfg
	c.Source, c.StateDir, c.StateDirSet = "", "", false
	if c.Cluster != nil {
		cl := *c.Cluster
		cl.Instance = ""
		c.Cluster = &cl
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// adminCluster serves GET /cluster: the instances seen in the last day
// (name, address, listeners, version, config hash, last heartbeat,
// live), this one marked self, so that one running an old binary or
// configuration stands out.
func (d *daemon) adminCluster(w http.ResponseWriter, r *http.Request) {
	if d.cluster == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this instance is not in a cluster (no [cluster] section)"})
		return
	}
	list, err := d.cluster.node.Instances(r.Context())
	out := map[string]any{
		"instance":  d.cluster.node.Instance(),
		"redis_up":  d.cluster.node.Up(),
		"live":      d.cluster.node.Live(),
		"instances": list,
	}
	if err != nil {
		out["error"] = err.Error()
	}
	if hashes := map[string]bool{}; len(list) > 0 {
		for _, in := range list {
			if in.Live {
				hashes[in.ConfigHash] = true
			}
		}
		out["configs_differ"] = len(hashes) > 1
	}
	writeJSON(w, http.StatusOK, out)
}
