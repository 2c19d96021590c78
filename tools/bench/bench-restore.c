/* bench-restore: how long ppn-fleetd takes to restore its registry.
 *
 * For each size N (default 1000, 10000, 100000) a fleet.db with N VM
 * records (spread over 1000 tenants, all running) is written with the
 * sqlite3 command in one transaction, then ppn-fleetd is started on it
 * from the build tree: the table gives the restore time it logs, the
 * time from exec to its first answered tenant request, and its RSS.
 * The reference is sqlite3 itself reading the same rows
 * (SELECT count(*) ... over every column).
 *
 *   tools/bench/bench-restore [-s N,N,...]
 */
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "ppn-test-util.h"

static gchar *sizes_opt = NULL;

static void
write_db (const gchar *path, guint n)
{
	g_autofree gchar *sql_path = g_strconcat (path, ".sql", NULL);
	FILE *f = fopen (sql_path, "w");
	const gchar *argv[] = {"sh", "-c", NULL, NULL};
	g_autofree gchar *cmd = g_strdup_printf ("sqlite3 '%s' < '%s' > /dev/null", path, sql_path);
	gint status = -1;

	g_assert_nonnull (f);
	fprintf (f, "PRAGMA journal_mode=WAL;\nBEGIN;\n"
		    "CREATE TABLE vms (id TEXT PRIMARY KEY NOT NULL, tenant TEXT NOT NULL, name TEXT NOT NULL,"
		    " image TEXT NOT NULL, vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, state TEXT NOT NULL,"
		    " node TEXT, port_forwards TEXT NOT NULL DEFAULT '[]', created_at INTEGER NOT NULL,"
		    " updated_at INTEGER NOT NULL, egress TEXT NOT NULL DEFAULT 'nat');\n"
		    "CREATE INDEX vms_by_tenant ON vms (tenant, created_at);\n"
		    "CREATE INDEX vms_by_state ON vms (state);\n");
	for (guint i = 0; i < n; i++)
		fprintf (f,
			 "INSERT INTO vms VALUES ('%016x','t%u','vm%u','test-guest',1,256,'running','node%u',"
			 "'[{\"guest_port\":80,\"proto\":\"tcp\",\"host_address\":\"127.0.0.1\",\"host_port\":%u}]',"
			 "%u,%u,'nat');\n",
			 0x10000000u + i, i % 1000, i, i % 1000, 20000 + i % 1000, 1000000 + i, 1000000 + i);
	fprintf (f, "COMMIT;\nPRAGMA user_version = 2;\n");
	fclose (f);
	argv[2] = cmd;
	g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL);
	g_assert_true (g_spawn_check_wait_status (status, NULL));
	g_unlink (sql_path);
}

static gdouble
sqlite_scan_ms (const gchar *path)
{
	g_autofree gchar *cmd = g_strdup_printf (
		"sqlite3 '%s' \"SELECT count(*), sum(length(id)+length(tenant)+length(name)+length(image)+"
		"length(port_forwards)+vcpus+memory_mib) FROM vms WHERE state != 'deleted'\" > /dev/null",
		path);
	const gchar *argv[] = {"sh", "-c", cmd, NULL};
	gint64 t0 = g_get_monotonic_time ();
	gint status = -1;

	g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL);
	return (g_get_monotonic_time () - t0) / 1000.0;
}

static guint64
rss_kib (GSubprocess *proc)
{
	g_autofree gchar *path = g_strdup_printf ("/proc/%s/status", g_subprocess_get_identifier (proc));
	g_autofree gchar *status = NULL;
	const gchar *line;

	if (!g_file_get_contents (path, &status, NULL, NULL) || (line = strstr (status, "VmRSS:")) == NULL)
		return 0;
	return g_ascii_strtoull (line + 6, NULL, 10);
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
		{"sizes", 's', 0, G_OPTION_ARG_STRING, &sizes_opt, "Record counts (default 1000,10000,100000)", "N,N"},
		{NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) sizes = NULL;

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
		g_printerr ("bench-restore: %s\n", error->message);
		return 2;
	}
	sizes = g_strsplit (sizes_opt != NULL ? sizes_opt : "1000,10000,100000", ",", -1);
	g_print ("machine: %u cpus\n", g_get_num_processors ());
	g_print ("%10s %14s %18s %12s %14s %8s\n", "records", "restore (ms)", "exec->1st ans (ms)", "RSS (MiB)",
		 "sqlite3 (ms)", "ratio");
	for (guint s = 0; sizes[s] != NULL; s++) {
		guint n = (guint)g_ascii_strtoull (sizes[s], NULL, 10);
		PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 4};
		g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new (&opts, &error);
		g_autofree gchar *state = NULL;
		g_autofree gchar *db = NULL;
		g_autofree gchar *log_path = NULL;
		g_autofree gchar *log = NULL;
		const gchar *line;
		gdouble restore_ms = -1, first_ms, scan_ms;
		gint64 t0;
		guint status = 0;

		g_assert_no_error (error);
		state = g_build_filename (fleet->dir, "fleet", NULL);
		g_mkdir_with_parents (state, 0700);
		db = g_build_filename (state, "fleet.db", NULL);
		write_db (db, n);
		t0 = g_get_monotonic_time ();
		if (!ppn_test_fleet_start_fleetd (fleet, &error)) {
			g_printerr ("bench-restore: %s\n", error->message);
			return 1;
		}
		/* first answered tenant request: the registry is whole by then */
		while (TRUE) {
			g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL,
								     &status, NULL);
			if (status == 200)
				break;
			g_usleep (1000);
		}
		first_ms = (g_get_monotonic_time () - t0) / 1000.0;
		log_path = g_build_filename (fleet->dir, "fleetd.log", NULL);
		g_file_get_contents (log_path, &log, NULL, NULL);
		line = log != NULL ? strstr (log, "VM records in ") : NULL;
		if (line != NULL)
			restore_ms = g_ascii_strtod (line + strlen ("VM records in "), NULL);
		scan_ms = sqlite_scan_ms (db);
		g_print ("%10u %14.1f %18.1f %12.1f %14.1f %8.2f\n", n, restore_ms, first_ms,
			 rss_kib (fleet->fleetd) / 1024.0, scan_ms, restore_ms / scan_ms);
	}
	return 0;
}
