package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/config/configdump"
	"github.com/gatehouse-proxy/gatehouse/tlsedge"
)

// cmdCheck validates a config file and the certificates it names, like
// `nginx -t`: exit 0 with a one-line summary, or every problem with its key
// path and line, and exit 1.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigPath, "config file to check")
	fs.StringVar(cfgPath, "c", defaultConfigPath, "short for -config")
	dump := fs.Bool("dump", false, "when valid, print the effective configuration (every default written out) as TOML on standard output")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: gatehouse check [-config FILE] [-dump]

Validates the file (every problem is reported, with its key and line) and the
certificate files it names; exits 0 when all is well. The file may also be
given as the only argument.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	switch {
	case fs.NArg() == 1 && !flagSet(fs, "config", "c"):
		*cfgPath = fs.Arg(0)
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "gatehouse check: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	// With -dump, standard output is the configuration alone.
	summary := stdout
	if *dump {
		summary = stderr
	}
	// The daemon's own resolution (state_dir, then $STATE_DIRECTORY), so
	// that check tests the state directory the daemon will use.
	cfg, err := source{path: *cfgPath}.load()
	if err != nil {
		printLoadError(stderr, *cfgPath, err)
		return 1
	}
	tc, err := tlsConfigOf(cfg)
	if err == nil {
		err = tlsedge.Check(tc, time.Now())
	}
	if err == nil && cfg.HTTPS != nil {
		err = tlsedge.CheckPolicy(policyOf(cfg.HTTPS))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n%s: configuration is not valid\n", *cfgPath, err, *cfgPath)
		return 1
	}
	warnings, problems := checkFiles(cfg)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning: "+w.Error())
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p.Error())
		}
		fmt.Fprintf(stderr, "%s: %d problem(s); configuration is not valid\n", *cfgPath, len(problems))
		return 1
	}
	routes, servers := 0, 0
	for _, s := range cfg.Sites {
		routes += len(s.Routes)
	}
	for _, u := range cfg.Upstreams {
		servers += len(u.Servers)
	}
	fmt.Fprintf(summary, "%s: ok: %d site(s), %d route(s), %d upstream(s) with %d server(s), %d rate-limit zone(s)",
		*cfgPath, len(cfg.Sites), routes, len(cfg.Upstreams), servers, len(cfg.Zones))
	if len(warnings) > 0 {
		fmt.Fprintf(summary, ", %d warning(s)", len(warnings))
	}
	fmt.Fprintln(summary)
	if *dump {
		stdout.Write(configdump.Dump(cfg))
	}
	return 0
}

// defaultConfigPath is where check looks without -config: the path the
// systemd unit and the packages use.
const defaultConfigPath = "/etc/gatehouse/gatehouse.toml"

// flagSet reports whether any of the named flags was given.
func flagSet(fs *flag.FlagSet, names ...string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		for _, n := range names {
			if f.Name == n {
				set = true
			}
		}
	})
	return set
}

// checkFiles looks at the files and directories cfg names as they are on
// disk: an unusable state directory is a problem; loose permissions on the
// config file or a private key are warnings (sshd refuses such keys;
// Gatehouse only warns, since a group-readable key is a common deliberate
// setup, e.g. Debian's ssl-cert group).
func checkFiles(cfg *config.Config) (warnings, problems []config.Problem) {
	if msg, fatal := checkStateDir(cfg.StateDir); fatal {
		problems = append(problems, cfg.Problemf("state_dir", "%s", msg))
	} else if msg != "" {
		warnings = append(warnings, cfg.Problemf("state_dir", "%s", msg))
	}
	if cfg.Source != "" {
		if fi, err := os.Stat(cfg.Source); err == nil && fi.Mode().Perm()&0o022 != 0 {
			warnings = append(warnings, config.Problem{File: cfg.Source, Msg: fmt.Sprintf(
				"the config file is writable by %s (mode %04o): whoever can write it controls the edge (chmod go-w %s)",
				who(fi.Mode().Perm()&0o022), fi.Mode().Perm(), cfg.Source)})
		}
	}
	for _, s := range cfg.Sites {
		for _, r := range s.Routes {
			if r.Files == nil {
				continue
			}
			// Stat follows links, as the file server does at its root.
			if fi, err := os.Stat(r.Files.Dir); err == nil && fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0 {
				warnings = append(warnings, cfg.Problemf(r.Key,
					"route %s serves %s, which anyone on the machine may write to (mode %04o): they choose what the site serves (chmod o-w %s)",
					r.Path, r.Files.Dir, fi.Mode().Perm(), r.Files.Dir))
			}
		}
		if s.TLS != config.TLSFiles {
			continue
		}
		// Stat follows links: certbot's live/privkey.pem is a link, and the
		// file it points to is what must be private.
		if fi, err := os.Stat(s.KeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			warnings = append(warnings, cfg.Problemf("sites."+s.Name+".key_file",
				"%s is open to %s (mode %04o): a private key should be readable by its owner only (chmod go-rwx %s)",
				s.KeyFile, who(fi.Mode().Perm()&0o077), fi.Mode().Perm(), s.KeyFile))
		}
	}
	warnings = append(warnings, clusterFileWarnings(cfg)...)
	return warnings, problems
}

// who names the classes that have any of the permission bits in m.
func who(m fs.FileMode) string {
	g, o := m&0o070 != 0, m&0o007 != 0
	switch {
	case g && o:
		return "its group and others"
	case g:
		return "its group"
	}
	return "others"
}

// checkStateDir tells whether dir can be the state directory of a daemon
// running as the current user. It creates nothing that stays: writability
// is tested by creating and removing a file, which also catches read-only
// mounts and ACLs that the mode bits do not show. fatal means the daemon
// could not start; a message with fatal false is a warning (dir does not
// exist and this user cannot create it, which is normal when check runs as
// another user than the daemon, or before systemd's StateDirectory=
// created it). "" means all is well.
func checkStateDir(dir string) (msg string, fatal bool) {
	uid := os.Geteuid()
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Sprintf("%s is not a directory", dir), true
	case err == nil:
		f, err := os.CreateTemp(dir, ".gatehouse-probe-*")
		if err != nil {
			return fmt.Sprintf("%s is not writable by uid %d: %v", dir, uid, cause(err)), true
		}
		f.Close()
		os.Remove(f.Name())
		return "", false
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return fmt.Sprintf("%s: %v", dir, cause(err)), true
	}
	// It does not exist: the daemon creates it (mode 0700), so its nearest
	// existing ancestor must be a directory this user can write in.
	parent := filepath.Dir(dir)
	for {
		fi, err := os.Stat(parent)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Sprintf("%s cannot be created: %s is not a directory", dir, parent), true
			}
			break
		}
		if next := filepath.Dir(parent); next != parent && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			parent = next
			continue
		}
		return fmt.Sprintf("%s cannot be created: %v", dir, err), true
	}
	// access(2) rather than a probe: check leaves no trace outside the
	// state directory, and this is only a warning.
	if err := unix.Access(parent, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Sprintf("%s does not exist and uid %d cannot create it in %s (%v); systemd's StateDirectory= creates it, otherwise create it for the daemon's user", dir, uid, parent, err), false
	}
	return "", false
}

// cause is the innermost error of a *PathError and the like, for messages
// that already name the path.
func cause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// prepareStateDir creates the state directory if needed and fails, with
// check's message, when the daemon could not use it.
func prepareStateDir(dir string) error {
	if msg, fatal := checkStateDir(dir); fatal {
		return errors.New("state_dir: " + msg)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	if msg, _ := checkStateDir(dir); msg != "" {
		return errors.New("state_dir: " + msg)
	}
	return nil
}
