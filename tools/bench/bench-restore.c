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

#include "bench-util.h"

static gchar *sizes_opt = NULL;

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
	ppn_bench_print_machine ();
	ppn_bench_restore_table ((const gchar *const *)sizes);
	ppn_bench_print_load ("at the end");
	return 0;
}
