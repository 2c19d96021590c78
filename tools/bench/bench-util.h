#pragma once

/* bench-util: what the benchmarks share. Statistics of a sample, the
 * machine a figure was measured on, a fleet.db fixture of N VM records
 * written with the sqlite3 command, a process's CPU, RSS and descriptors
 * from /proc, and wrk runs with their results read back. */

#include <glib.h>

#include "ppn-test-util.h"

G_BEGIN_DECLS

/* the value at fraction @p (0..1) of @v, a GArray of gdouble (sorted in place) */
gdouble ppn_bench_percentile (GArray *v, gdouble p);
/* the machine line(s): CPU model, cores, RAM, kernel, libvirt, QEMU, libsoup, GLib */
void ppn_bench_print_machine (void);
/* /proc/loadavg, for the table's footer: other work on the machine */
void ppn_bench_print_load (const gchar *when);

/* one VM record of a fixture; the callback fills tenant and node for
 * record @i (ids, names and ports are derived from @i) */
typedef struct {
	GString *tenant;
	GString *node; /* empty: no node */
	guint host_port;
} PpnBenchRecord;
typedef void (*PpnBenchRecordFunc) (guint i, PpnBenchRecord *rec, gpointer user_data);

/* a fixture where tenant alice has @own of @total records, spread
 * evenly through the table, and 999 other tenants the rest, on 1000
 * nodes; pass a PpnBenchOwnSpread from ppn_bench_own_spread() */
typedef struct {
	guint own;
	guint stride;
} PpnBenchOwnSpread;
PpnBenchOwnSpread ppn_bench_own_spread (guint own, guint total);
void ppn_bench_own_record (guint i, PpnBenchRecord *rec, gpointer user_data);

/* ppn-fleetd started on such a fixture, with @extra lines in [fleet];
 * lost-grace as large as it goes, node-timeout @node_timeout: the
 * records' nodes never heartbeat */
PpnTestFleet *ppn_bench_start_own_fleet (guint own, guint total, const gchar *extra, guint node_timeout);

/* the id of record @i, as the fixture writes it (16 hex digits) */
gchar *ppn_bench_vm_id (guint i);
/* write @path, a fleet.db of @n running records, in one transaction */
void ppn_bench_write_db (const gchar *path, guint n, PpnBenchRecordFunc func, gpointer user_data);
/* a fleet (not started) whose state dir holds such a fleet.db */
PpnTestFleet *ppn_bench_fleet_with_db (const PpnTestFleetOptions *opts, guint n, PpnBenchRecordFunc func,
				       gpointer user_data);

/* the restore table of bench-restore, one row per record count */
void ppn_bench_restore_table (const gchar *const *sizes);

/* from /proc/PID: RSS, CPU seconds used (utime + stime), open descriptors */
guint64 ppn_bench_rss_kib (const gchar *pid);
gdouble ppn_bench_cpu_seconds (const gchar *pid);
guint ppn_bench_fd_count (const gchar *pid);
const gchar *ppn_bench_pid (GSubprocess *proc);

/* one wrk run's results */
typedef struct {
	gdouble rps;
	gdouble p50_ms;
	gdouble p99_ms;
	guint64 requests;
	guint64 errors; /* connect, read, write, timeout, and non-2xx answers */
} PpnBenchWrk;

/* wrk -t@threads -c@conns -d@seconds against @url with the bearer
 * @token; the Lua script (written to @dir) sets the header and prints
 * the figures back. FALSE (and a message) if wrk is missing or fails. */
gboolean ppn_bench_wrk (const gchar *dir, const gchar *url, const gchar *token, guint threads, guint conns,
			guint seconds, PpnBenchWrk *out);

G_END_DECLS
