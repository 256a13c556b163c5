package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// AuditSQLite is "audit-store": the SQLite audit database (and its journal
// directory, <path>.journal) can be written by this user. It writes only a
// temporary file next to the database, never a record: the audit trail is
// hash-chained and must hold only real requests. Run doctor as the user the
// gateway runs as.
func AuditSQLite(path string) Check {
	return CheckFunc("audit-store", func(context.Context) Result {
		if path == "" {
			return Skipf("no SQLite audit store configured")
		}
		dir := filepath.Dir(path)
		fix := fmt.Sprintf("make %s writable by the gateway's user (in a container, mount a volume there: the root filesystem is read-only)", dir)
		st, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			parent := dir
			for {
				next := filepath.Dir(parent)
				if next == parent {
					break
				}
				parent = next
				if _, err := os.Stat(parent); err == nil {
					break
				}
			}
			if err := writable(parent); err != nil {
				return Failf(fix, "directory %s does not exist and cannot be created (%s is not writable: %v)", dir, parent, err)
			}
			return Okf("directory %s does not exist yet; the gateway will create it (%s is writable)", dir, parent)
		}
		if err != nil {
			return Failf(fix, "%s: %v", dir, err)
		}
		if !st.IsDir() {
			return Failf("audit.sqlite must be a file path in a directory", "%s is not a directory", dir)
		}
		if err := writable(dir); err != nil {
			return Failf(fix, "directory %s is not writable: %v", dir, err)
		}
		msg := fmt.Sprintf("directory %s is writable", dir)
		if fi, err := os.Stat(path); err == nil {
			if !fi.Mode().IsRegular() {
				return Failf("point audit.sqlite at a regular file", "%s is not a regular file", path)
			}
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return Failf(fmt.Sprintf("give the gateway's user write access to %s (and its -wal and -shm files)", path), "%s exists but cannot be written: %v", path, err)
			}
			f.Close()
			msg = fmt.Sprintf("%s exists and is writable", path)
		} else {
			msg += "; the database will be created at start"
		}
		journal := path + ".journal"
		if fi, err := os.Stat(journal); err == nil && fi.IsDir() {
			if err := writable(journal); err != nil {
				return Failf(fmt.Sprintf("give the gateway's user write access to %s", journal), "journal directory %s is not writable: %v", journal, err)
			}
			msg += "; journal writable"
		}
		return Okf("%s", msg)
	})
}

func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".gatehouse-doctor-*")
	if err != nil {
		return errors.Unwrap(err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Redis is "redis": the limits store answers PING (authentication
// included). url is a redis:// or rediss:// URL; password, when set,
// overrides the URL's.
func Redis(url, password string) Check {
	return CheckFunc("redis", func(ctx context.Context) Result {
		if url == "" {
			return Skipf("limits.redis not configured: counters live in the gateway process (one replica only)")
		}
		opt, err := redis.ParseURL(url)
		if err != nil {
			return Failf("write limits.redis as redis://host:6379/0 or rediss://host:6380/0", "limits.redis is not a Redis URL")
		}
		if password != "" {
			opt.Password = password
		}
		opt.MaxRetries = -1
		opt.PoolSize = 1
		opt.DialerRetries = 1
		c := redis.NewClient(opt)
		defer c.Close()
		if err := c.Ping(ctx).Err(); err != nil {
			return Failf("check limits.redis (host, port, TLS: rediss://) and limits.redis_password, and that the gateway may reach Redis", "Redis at %s: %s", opt.Addr, describeErr(err))
		}
		return Okf("Redis at %s answers PING", opt.Addr)
	})
}

// Postgres is "postgres-<role>": the database accepts a connection with the
// configured credentials and is a read-write primary (not a standby or a
// read-only session). Nothing is written. The DSN is never printed (it may
// hold a password).
func Postgres(role, dsn string) Check {
	return CheckFunc(CheckName("postgres", role), func(ctx context.Context) Result {
		if dsn == "" {
			return Skipf("not configured")
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return Failf("write the DSN as postgres://user@host:5432/db?sslmode=require", "the %s PostgreSQL DSN does not parse", role)
		}
		where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return Failf("check the host, port, database, user, password and sslmode of the DSN, and that the gateway may reach PostgreSQL", "PostgreSQL at %s: %s", where, describeErr(err))
		}
		defer conn.Close(context.Background())
		var recovery bool
		var readOnly string
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").Scan(&recovery, &readOnly); err != nil {
			return Failf("check the database server and the user's permissions", "PostgreSQL at %s: %s", where, describeErr(err))
		}
		if recovery || readOnly == "on" {
			return Failf("point the DSN at the primary (read-write) server, not a standby or read replica",
				"PostgreSQL at %s is read-only (standby: %v, transaction_read_only: %s): the gateway cannot write there", where, recovery, readOnly)
		}
		return Okf("PostgreSQL at %s answers and accepts writes (primary)", where)
	})
}
