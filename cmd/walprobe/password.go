package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
)

// readPasswordFile returns the first line of the --password-file. Like
// libpq's ~/.pgpass, the file must not be readable by group or others: a
// world-readable secret is a configuration error, not a warning. Errors
// name the file and the fix, never its content.
func readPasswordFile(path string) (string, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("--password-file %s: no such file: fix the path", path)
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("--password-file %s: permission denied: let the user running walprobe read it", path)
	case err != nil:
		return "", fmt.Errorf("--password-file %s: %w", path, errors.Unwrap(err))
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("--password-file %s: not a regular file", path)
	case fi.Mode().Perm()&0o077 != 0:
		return "", fmt.Errorf("--password-file %s: readable by group or others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("--password-file %s: permission denied: let the user running walprobe read it", path)
		}
		return "", fmt.Errorf("--password-file %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return "", fmt.Errorf("--password-file %s: cannot read it: %w", path, errors.Unwrap(err))
		}
		return "", fmt.Errorf("--password-file %s: empty: put the password on the first line", path)
	}
	pw := strings.TrimSuffix(sc.Text(), "\r")
	if pw == "" {
		return "", fmt.Errorf("--password-file %s: the first line is empty: put the password on it", path)
	}
	return pw, nil
}

// fillPassword gives pw to cfg when it has no password yet from its DSN,
// PGPASSWORD or the passfile (pgx applied those while parsing), so the most
// specific source wins. pgx shares one password across the hosts of a
// multi-host DSN.
func fillPassword(pw string, cfg *pgx.ConnConfig) {
	if cfg != nil && cfg.Password == "" {
		cfg.Password = pw
	}
}
