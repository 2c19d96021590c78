/* bench-ledger: what the WORM ledger costs.
 *
 * Appends: ~200-byte JSON entries appended for -s seconds in batches
 * of 1, 10 and 100 (one write, one fsync and one signed head an append);
 * the reference is the same bytes written and fsync()ed by hand into a
 * plain O_APPEND file, batch for batch, so the table shows what hashing
 * and signing add to the fsync.
 *
 * Verify: a ledger of N entries (default 100000) appended in batches of
 * 100, and one of N/10 appended one by one (a tree head each), verified
 * with ppn_file_ledger_verify() and opened with ppn_file_ledger_open();
 * the reference is reading the file and one SHA-256 over it. Then
 * inclusion proofs at N entries, and a page of 100 proofs in an
 * in-memory tree of 2^20 leaves.
 *
 *   tools/bench/bench-ledger [-s SECONDS] [-n ENTRIES] [-d DIR]
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "ppn-file-ledger.h"
#include "ppn-merkle.h"
#include "ppn-test-util.h"

static gdouble seconds = 3.0;
static gint verify_entries = 100000;
static gchar *base_dir = NULL;

static GBytes *
entry_bytes (guint64 i)
{
	g_autofree gchar *text = g_strdup_printf (
		"{\"ts\":\"2026-12-03T18:07:06.123Z\",\"tenant\":\"tenant-%04u\",\"op\":\"vm.create\","
		"\"vm\":\"%016" G_GINT64_MODIFIER "x\",\"outcome\":\"ok\",\"request\":\"req-%020" G_GUINT64_FORMAT
		"\",\"node\":\"node-1\",\"detail\":\"image test-guest, 1 vcpu, 256 MiB\"}",
		(guint)(i % 1000), i * 0x9e3779b97f4a7c15u, i);

	return g_bytes_new (text, strlen (text));
}

static GPtrArray *
batch_of (guint64 first, guint n)
{
	GPtrArray *entries = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);

	for (guint i = 0; i < n; i++)
		g_ptr_array_add (entries, entry_bytes (first + i));
	return entries;
}

static void
die (const gchar *what, GError *error)
{
	g_printerr ("bench-ledger: %s: %s\n", what, error != NULL ? error->message : g_strerror (errno));
	exit (1);
}

static gdouble
ms_since (gint64 t0)
{
	return (g_get_monotonic_time () - t0) / 1000.0;
}

static gchar *
fresh_dir (const gchar *name)
{
	gchar *dir = g_build_filename (base_dir, name, NULL);

	g_mkdir_with_parents (base_dir, 0700);
	return dir;
}

static void
print_machine (void)
{
	struct utsname u;
	struct statfs fs;
	g_autofree gchar *cpuinfo = NULL;
	g_auto(GStrv) lines = NULL;
	const gchar *cpu = "?";

	uname (&u);
	if (g_file_get_contents ("/proc/cpuinfo", &cpuinfo, NULL, NULL))
		lines = g_strsplit (cpuinfo, "\n", -1);
	for (guint i = 0; lines != NULL && lines[i] != NULL; i++) {
		if (g_str_has_prefix (lines[i], "model name") && strchr (lines[i], ':') != NULL) {
			cpu = strchr (lines[i], ':') + 2;
			break;
		}
	}
	g_print ("machine: %s %s, %u cpus (%s)\n", u.sysname, u.release, g_get_num_processors (), cpu);
	if (statfs (base_dir, &fs) == 0)
		g_print ("ledger dir: %s (filesystem magic 0x%lx)\n", base_dir, (unsigned long)fs.f_type);
	{
		g_autoptr(GBytes) sample = entry_bytes (0);
		g_print ("entry: %" G_GSIZE_FORMAT " bytes of JSON\n\n", g_bytes_get_size (sample));
	}
}

/* the same bytes and fsyncs as the ledger's records, without a ledger:
 * an O_APPEND file, one write and one fsync a batch */
typedef struct {
	int fd;
	guint8 *buf;
	gsize len;
} PlainFile;

static void
plain_open (PlainFile *plain, const gchar *dir, guint batch)
{
	g_autofree gchar *path = g_build_filename (dir, "plain", NULL);
	g_autoptr(GBytes) sample = entry_bytes (0);

	/* an entry record is 5 + 8 + the entry + 32 bytes, a head 5 + 136 + 32 */
	plain->len = (g_bytes_get_size (sample) + 5 + 8 + 32) * batch + 5 + 136 + 32;
	plain->buf = g_malloc0 (plain->len);
	plain->fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (plain->fd < 0)
		die (path, NULL);
}

static void
plain_append (PlainFile *plain)
{
	if (write (plain->fd, plain->buf, plain->len) != (gssize)plain->len || fsync (plain->fd) != 0)
		die ("plain file", NULL);
}

static void
plain_close (PlainFile *plain)
{
	close (plain->fd);
	g_free (plain->buf);
}

/* ledger appends and plain appends taken in turns, so that both see the
 * same disk */
static void
bench_appends (void)
{
	static const guint batches[] = {1, 10, 100};

	g_print ("%-6s %8s %12s %12s %14s %14s %7s\n", "batch", "appends", "ms/append", "entries/s",
		 "plain ms/app.", "plain entr./s", "ratio");
	for (guint b = 0; b < G_N_ELEMENTS (batches); b++) {
		g_autofree gchar *name = g_strdup_printf ("append-%u", batches[b]);
		g_autofree gchar *dir = fresh_dir (name);
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnFileLedger) ledger = ppn_file_ledger_open (dir, &error);
		PlainFile plain;
		guint appends = 0;
		gint64 t0 = g_get_monotonic_time (), ledger_us = 0, plain_us = 0;
		gdouble ms, plain_ms;

		if (ledger == NULL)
			die (dir, error);
		plain_open (&plain, dir, batches[b]);
		do {
			g_autoptr(GPtrArray) entries = batch_of ((guint64)appends * batches[b], batches[b]);
			gint64 t = g_get_monotonic_time ();

			if (!ppn_ledger_append (PPN_LEDGER (ledger), entries, NULL, &error))
				die ("append", error);
			ledger_us += g_get_monotonic_time () - t;
			t = g_get_monotonic_time ();
			plain_append (&plain);
			plain_us += g_get_monotonic_time () - t;
			appends++;
		} while (ms_since (t0) < seconds * 1000 || appends < 10);
		plain_close (&plain);
		ms = ledger_us / 1000.0 / appends;
		plain_ms = plain_us / 1000.0 / appends;
		g_print ("%-6u %8u %12.3f %12.0f %14.3f %14.0f %7.2f\n", batches[b], appends, ms,
			 batches[b] / (ms / 1000.0), plain_ms, batches[b] / (plain_ms / 1000.0), ms / plain_ms);
		g_clear_object (&ledger);
		ppn_test_rm_rf (dir);
	}
	g_print ("\n");
}

static gint
cmp_double (gconstpointer a, gconstpointer b)
{
	gdouble x = *(const gdouble *)a, y = *(const gdouble *)b;
	return x < y ? -1 : x > y;
}

static void
bench_proofs (PpnLedger *ledger, guint64 size)
{
	g_autoptr(GArray) us = g_array_new (FALSE, FALSE, sizeof (gdouble));
	GRand *rand = g_rand_new_with_seed (6962);
	gint64 t0;

	for (guint p = 0; p < 1000; p++) {
		guint64 index = (guint64)g_rand_double_range (rand, 0, (gdouble)size);
		g_autoptr(GError) error = NULL;
		gint64 t = g_get_monotonic_time ();
		g_autoptr(GPtrArray) proof = ppn_ledger_prove_inclusion (ledger, index, size, &error);
		gdouble v = (gdouble)(g_get_monotonic_time () - t);

		if (proof == NULL)
			die ("prove_inclusion", error);
		g_array_append_val (us, v);
	}
	g_array_sort (us, cmp_double);
	t0 = g_get_monotonic_time ();
	for (guint p = 0; p < 100; p++) {
		g_autoptr(GPtrArray) proof = ppn_ledger_prove_inclusion (ledger, (size / 100) * p, size, NULL);
	}
	g_print ("inclusion proof at %" G_GUINT64_FORMAT " entries: median %.1f us, p99 %.1f us; a page of 100: "
		 "%.2f ms\n",
		 size, g_array_index (us, gdouble, us->len / 2), g_array_index (us, gdouble, us->len * 99 / 100),
		 ms_since (t0));
	g_rand_free (rand);
}

static void
bench_million (void)
{
	const guint n = 1 << 20;
	g_autoptr(PpnMerkleTree) tree = ppn_merkle_tree_new ();
	gint64 t0 = g_get_monotonic_time ();
	gdouble build_ms;

	for (guint i = 0; i < n; i++) {
		guint8 leaf[PPN_MERKLE_HASH_SIZE];
		guint64 be = GUINT64_TO_BE (i);
		ppn_merkle_leaf_hash ((const guint8 *)&be, sizeof be, leaf);
		ppn_merkle_tree_append (tree, leaf);
	}
	build_ms = ms_since (t0);
	t0 = g_get_monotonic_time ();
	for (guint p = 0; p < 100; p++) {
		g_autoptr(GPtrArray) proof = ppn_merkle_tree_prove_inclusion (tree, (n / 100) * p + p, n - p, NULL);
	}
	g_print ("in-memory tree of %u leaves: built in %.0f ms; a page of 100 inclusion proofs: %.2f ms\n", n,
		 build_ms, ms_since (t0));
}

static GBytes *
read_bytes (const gchar *path)
{
	g_autoptr(GError) error = NULL;
	gchar *data = NULL;
	gsize len = 0;

	if (!g_file_get_contents (path, &data, &len, &error))
		die (path, error);
	return g_bytes_new_take (data, len);
}

static gdouble
file_mib (const gchar *path)
{
	GStatBuf st;

	return g_stat (path, &st) == 0 ? st.st_size / 1048576.0 : 0.0;
}

static gdouble
reference_scan_ms (const gchar *path)
{
	gint64 t0 = g_get_monotonic_time ();
	g_autoptr(GBytes) data = read_bytes (path);
	guint8 hash[32];

	gnutls_hash_fast (GNUTLS_DIG_SHA256, g_bytes_get_data (data, NULL), g_bytes_get_size (data), hash);
	return ms_since (t0);
}

/* a ledger of @n entries appended @batch at a time: verified, opened,
 * and against the reference; @ledger_out keeps it open */
static void
bench_verify_one (const gchar *name, guint64 n, guint batch, PpnFileLedger **ledger_out)
{
	g_autofree gchar *dir = fresh_dir (name);
	g_autofree gchar *path = g_build_filename (dir, "ledger", NULL);
	g_autofree gchar *pub_path = g_build_filename (dir, "ledger.pub", NULL);
	g_autofree gchar *label = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFileLedger) ledger = ppn_file_ledger_open (dir, &error);
	g_auto(PpnLedgerVerifyResult) result = {0};
	g_autoptr(GBytes) pub = NULL;
	gdouble verify_ms, open_ms, ref_ms;
	gint64 t0;

	if (ledger == NULL)
		die (dir, error);
	for (guint64 first = 0; first < n; first += batch) {
		g_autoptr(GPtrArray) entries = batch_of (first, (guint)MIN (batch, n - first));
		if (!ppn_ledger_append (PPN_LEDGER (ledger), entries, NULL, &error))
			die ("append", error);
	}
	g_clear_object (&ledger);
	pub = read_bytes (pub_path);

	ref_ms = reference_scan_ms (path);
	t0 = g_get_monotonic_time ();
	if (!ppn_file_ledger_verify (path, pub, NULL, &result, &error))
		die ("verify", error);
	verify_ms = ms_since (t0);
	t0 = g_get_monotonic_time ();
	ledger = ppn_file_ledger_open (dir, &error);
	if (ledger == NULL)
		die ("open", error);
	open_ms = ms_since (t0);
	label = g_strdup_printf ("%" G_GUINT64_FORMAT " in batches of %u", n, batch);
	g_print ("%-24s %7" G_GUINT64_FORMAT " %8.1f %10.1f %12.0f %9.1f %12.0f %10.1f\n", label,
		 result.tree_heads, file_mib (path), verify_ms, n / (verify_ms / 1000.0), open_ms,
		 n / (open_ms / 1000.0), ref_ms);
	if (ledger_out != NULL) {
		*ledger_out = g_steal_pointer (&ledger);
		return;
	}
	g_clear_object (&ledger);
	ppn_test_rm_rf (dir);
}

static void
bench_verify (void)
{
	g_autoptr(PpnFileLedger) ledger = NULL;

	g_print ("%-24s %7s %8s %10s %12s %9s %12s %10s\n", "entries", "heads", "MiB", "verify ms",
		 "verify e/s", "open ms", "open e/s", "read+SHA ms");
	bench_verify_one ("verify-100", (guint64)verify_entries, 100, &ledger);
	bench_verify_one ("verify-1", (guint64)verify_entries / 10, 1, NULL);
	g_print ("\n");
	bench_proofs (PPN_LEDGER (ledger), (guint64)verify_entries);
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
		{"seconds", 's', 0, G_OPTION_ARG_DOUBLE, &seconds, "Seconds of appends per batch size (default 3)",
		 "S"},
		{"entries", 'n', 0, G_OPTION_ARG_INT, &verify_entries, "Entries to verify (default 100000)", "N"},
		{"dir", 'd', 0, G_OPTION_ARG_FILENAME, &base_dir, "Where the ledgers go (default a new dir in TMPDIR)",
		 "DIR"},
		{NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr(GError) error = NULL;
	gboolean own_dir = FALSE;

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
		g_printerr ("bench-ledger: %s\n", error->message);
		return 2;
	}
	if (base_dir == NULL) {
		base_dir = g_dir_make_tmp ("bench-ledger-XXXXXX", &error);
		if (base_dir == NULL)
			die ("TMPDIR", error);
		own_dir = TRUE;
	}
	print_machine ();
	bench_appends ();
	bench_verify ();
	bench_million ();
	if (own_dir)
		ppn_test_rm_rf (base_dir);
	g_free (base_dir);
	return 0;
}
