/* The audit trail on a real fleet (libvirt's test driver): what is on the
 * record, in both sinks, through crashes, rotation and broken disks, and
 * what a tenant can read and prove of it. Case: shared/cases/08. */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>

#include "ppn-ledger.h"
#include "ppn-test-util.h"
#include "ppn-tls.h"

#define VM_BODY(name) "{\"name\":\"" name "\",\"image\":\"test-guest\"}"

static gchar *
state_path (PpnTestFleet *fleet, const gchar *name)
{
	return g_build_filename (fleet->dir, "fleet", name, NULL);
}

/* the audit file's records, in order; several files are read as one */
static GPtrArray *
read_lines (const gchar *first_path, ...)
{
	GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify)json_node_unref);
	const gchar *path = first_path;
	va_list args;

	va_start (args, first_path);
	for (; path != NULL; path = va_arg (args, const gchar *)) {
		g_autofree gchar *data = NULL;
		g_auto(GStrv) lines = NULL;

		if (!g_file_get_contents (path, &data, NULL, NULL))
			continue;
		g_assert_true (data[0] == '\0' || g_str_has_suffix (data, "\n"));
		lines = g_strsplit (data, "\n", -1);
		for (guint i = 0; lines[i] != NULL; i++) {
			g_autoptr(JsonParser) parser = json_parser_new ();
			if (lines[i][0] == '\0')
				continue;
			g_assert_true (json_parser_load_from_data (parser, lines[i], -1, NULL));
			g_ptr_array_add (out, json_node_ref (json_parser_get_root (parser)));
		}
	}
	va_end (args);
	return out;
}

static JsonObject *
line_at (GPtrArray *lines, gint64 index)
{
	for (guint i = 0; i < lines->len; i++) {
		JsonObject *obj = json_node_get_object (g_ptr_array_index (lines, i));
		if (json_object_get_int_member (obj, "index") == index)
			return obj;
	}
	return NULL;
}

static const gchar *
str (JsonObject *obj, const gchar *member)
{
	JsonNode *node = json_object_get_member (obj, member);

	return node != NULL && JSON_NODE_HOLDS_VALUE (node) ? json_node_get_string (node) : NULL;
}

/* the offline verifier over the ledger directory: exit status */
static gint
ledger_verify (PpnTestFleet *fleet, gchar **out)
{
	g_autofree gchar *dir = state_path (fleet, "ledger");
	g_autofree gchar *err = NULL;
	gint status = ppn_test_fleet_ppnctl (fleet, NULL, out, &err, "ledger", "verify", dir, NULL);

	g_test_message ("ppnctl ledger verify: %d %s", status, err);
	return status;
}

static gchar *
create_vm (PpnTestFleet *fleet, const gchar *token, const gchar *name, gint64 *receipt)
{
	g_autofree gchar *body = g_strdup_printf ("{\"name\":\"%s\",\"image\":\"test-guest\"}", name);
	guint status = 0;
	g_autofree gchar *raw = NULL;
	g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, token, "POST", "/v1/vms", body, &status, &raw);
	JsonObject *obj;

	if (status != 201)
		g_error ("create %s: %u %s", name, status, raw);
	obj = json_node_get_object (reply);
	g_assert_cmpint (fleet->last_receipt, >=, 0);
	g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (obj, "receipt"), "ledger_index"), ==,
			 fleet->last_receipt);
	if (receipt != NULL)
		*receipt = fleet->last_receipt;
	return g_strdup (json_object_get_string_member (obj, "id"));
}

static gint64
tree_size (PpnTestFleet *fleet)
{
	guint status = 0;
	g_autoptr(JsonNode) head = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/ledger/head", NULL, &status,
							NULL);

	g_assert_cmpuint (status, ==, 200);
	return json_object_get_int_member (json_node_get_object (head), "tree_size");
}

/* everything that happened is on the record, both places, the same way;
 * a tenant reads only its own, and another's VM looks like a missing one
 * there too */
static void
test_trail (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 2};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *audit = state_path (fleet, "audit.log");
	g_autofree gchar *id = NULL, *path = NULL, *missing = NULL, *raw1 = NULL, *raw2 = NULL;
	g_autofree gchar *out = NULL, *err = NULL;
	g_autoptr(GPtrArray) lines = NULL;
	gint64 created = -1, denied_foreign, denied_missing, denied_quota, destroyed;
	guint status = 0;
	JsonObject *line;

	id = create_vm (fleet, fleet->token1, "one", &created);
	path = g_strconcat ("/v1/vms/", id, NULL);
	g_free (create_vm (fleet, fleet->token1, "two", NULL));

	/* bob at alice's VM, and at one that does not exist */
	g_clear_pointer (&out, g_free);
	json_node_unref (ppn_test_fleet_call (fleet, fleet->token2, "DELETE", path, NULL, &status, &raw1));
	g_assert_cmpuint (status, ==, 404);
	denied_foreign = fleet->last_receipt;
	missing = g_strdup ("/v1/vms/0000000000000000");
	json_node_unref (ppn_test_fleet_call (fleet, fleet->token2, "DELETE", missing, NULL, &status, &raw2));
	g_assert_cmpuint (status, ==, 404);
	denied_missing = fleet->last_receipt;
	g_assert_cmpstr (raw1, ==, raw2);

	/* over quota, and no token at all */
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", VM_BODY ("three"),
							     &status, NULL);
		g_assert_cmpuint (status, ==, 403);
		denied_quota = fleet->last_receipt;
	}
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, "not-a-token", "GET", "/v1/vms", NULL, &status,
							     NULL);
		g_assert_cmpuint (status, ==, 401);
	}
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
		destroyed = fleet->last_receipt;
		g_assert_cmpint (destroyed, >, created);
	}

	lines = read_lines (audit, NULL);
	/* one line per ledger entry, in ledger order, none missing */
	g_assert_cmpint (lines->len, ==, tree_size (fleet));
	for (guint i = 0; i < lines->len; i++)
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (g_ptr_array_index (lines, i)), "index"),
				 ==, i);
	line = line_at (lines, created);
	g_assert_cmpstr (str (line, "op"), ==, "create");
	g_assert_cmpstr (str (line, "outcome"), ==, "success");
	g_assert_cmpstr (str (line, "tenant"), ==, "alice");
	g_assert_cmpstr (str (line, "vm_id"), ==, id);
	g_assert_nonnull (str (line, "request_id"));
	g_assert_nonnull (str (line, "time"));
	line = line_at (lines, created - 1);
	g_assert_cmpstr (str (line, "outcome"), ==, "requested");
	g_assert_cmpstr (str (line, "vm_name"), ==, "one");
	line = line_at (lines, destroyed);
	g_assert_cmpstr (str (line, "op"), ==, "destroy");
	g_assert_cmpstr (str (line, "outcome"), ==, "success");
	line = line_at (lines, denied_quota);
	g_assert_cmpstr (str (line, "outcome"), ==, "denied");
	g_assert_cmpstr (str (line, "error"), ==, "quota_exceeded");
	/* the operators see which it was; the tenant's ledger entry does not */
	line = line_at (lines, denied_foreign);
	g_assert_cmpstr (str (line, "tenant"), ==, "bob");
	g_assert_cmpstr (str (line, "error"), ==, "not_found");
	g_assert_cmpstr (str (line, "detail"), ==, "the VM belongs to another tenant");
	g_assert_cmpstr (str (line_at (lines, denied_missing), "detail"), ==, "no such VM");
	{
		gboolean found = FALSE;
		for (guint i = 0; i < lines->len; i++) {
			line = json_node_get_object (g_ptr_array_index (lines, i));
			if (g_strcmp0 (str (line, "op"), "authenticate") == 0) {
				found = TRUE;
				g_assert_null (str (line, "tenant"));
				g_assert_cmpstr (str (line, "outcome"), ==, "denied");
				g_assert_cmpstr (str (line, "detail"), ==, "GET /v1/vms: an unknown token");
			}
		}
		g_assert_true (found);
	}

	/* bob's view: only bob's entries, and the two denials alike */
	{
		g_autoptr(JsonNode) page = ppn_test_fleet_call (fleet, fleet->token2, "GET", "/v1/audit", NULL, &status,
								NULL);
		JsonArray *entries = json_object_get_array_member (json_node_get_object (page), "entries");
		JsonObject *a = NULL, *b = NULL;
		g_assert_cmpuint (status, ==, 200);
		g_assert_cmpuint (json_array_get_length (entries), ==, 2);
		for (guint i = 0; i < json_array_get_length (entries); i++) {
			JsonObject *item = json_array_get_object_element (entries, i);
			JsonObject *entry = json_object_get_object_member (item, "entry");
			g_assert_cmpstr (str (entry, "tenant"), ==, "bob");
			g_assert_false (json_object_has_member (entry, "detail"));
			g_assert_false (json_object_has_member (entry, "node"));
			if (json_object_get_int_member (item, "index") == denied_foreign)
				a = entry;
			if (json_object_get_int_member (item, "index") == denied_missing)
				b = entry;
		}
		g_assert_nonnull (a);
		g_assert_nonnull (b);
		{
			static const gchar *const differ[] = {"index", "time", "request_id", "vm_id", NULL};
			g_autoptr(GList) members = json_object_get_members (a);
			for (GList *m = members; m != NULL; m = m->next) {
				if (!g_strv_contains (differ, m->data))
					g_assert_cmpstr (str (a, m->data), ==, str (b, m->data));
			}
		}
		g_assert_cmpuint (json_object_get_size (a), ==, json_object_get_size (b));
	}

	/* alice proves her entries with the ledger key, and a wrong key fails */
	{
		g_autofree gchar *key = state_path (fleet, "ledger/ledger.pub");
		g_autofree gchar *wrong = g_build_filename (fleet->dir, "other-ledger.pub", NULL);
		g_autoptr(GBytes) other_key = NULL;
		g_autoptr(GBytes) other_pub = NULL;
		g_autoptr(GError) error = NULL;
		gint rc = ppn_test_fleet_ppnctl (fleet, fleet->token1, &out, &err, "audit", "--all", "--key", key, NULL);
		g_test_message ("ppnctl audit: %d\n%s%s", rc, out, err);
		g_assert_cmpint (rc, ==, 0);
		g_assert_nonnull (strstr (out, "Verified 8 entries"));
		g_assert_nonnull (strstr (out, id));
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);
		/* another ledger's key, made the way a ledger makes its own */
		g_assert_true (ppn_ledger_generate_key (&other_key, &other_pub, &error));
		g_assert_no_error (error);
		g_assert_true (g_file_set_contents (wrong, g_bytes_get_data (other_pub, NULL),
						    (gssize)g_bytes_get_size (other_pub), NULL));
		rc = ppn_test_fleet_ppnctl (fleet, fleet->token1, &out, &err, "audit", "--key", wrong, NULL);
		g_test_message ("ppnctl audit, wrong key: %d %s", rc, err);
		g_assert_cmpint (rc, !=, 0);
		g_assert_nonnull (strstr (err, "verification failed"));
	}
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (ledger_verify (fleet, &out), ==, 0);
}

/* a head saved today, a proof tomorrow that the ledger only grew */
static void
test_consistency (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 20};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *key = state_path (fleet, "ledger/ledger.pub");
	g_autofree gchar *saved = g_build_filename (fleet->dir, "head.json", NULL);
	g_autofree gchar *out = NULL, *err = NULL;
	gint rc;

	g_free (create_vm (fleet, fleet->token1, "a", NULL));
	rc = ppn_test_fleet_ppnctl (fleet, fleet->token1, &out, &err, "audit", "--key", key, "--save-head", saved,
				    NULL);
	g_assert_cmpint (rc, ==, 0);
	g_assert_true (g_file_test (saved, G_FILE_TEST_EXISTS));
	for (guint i = 0; i < 5; i++) {
		g_autofree gchar *name = g_strdup_printf ("b%u", i);
		g_free (create_vm (fleet, i % 2 ? fleet->token1 : fleet->token2, name, NULL));
	}
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
	rc = ppn_test_fleet_ppnctl (fleet, fleet->token1, &out, &err, "audit", "--key", key, "--tree-head", saved,
				    NULL);
	g_test_message ("%s%s", out, err);
	g_assert_cmpint (rc, ==, 0);
	g_assert_nonnull (strstr (out, "extends the saved head"));

	/* a head that was never the ledger's: refused */
	{
		g_autofree gchar *data = NULL;
		g_autoptr(GString) forged = NULL;
		gchar *p;
		g_assert_true (g_file_get_contents (saved, &data, NULL, NULL));
		forged = g_string_new (data);
		p = strstr (forged->str, "\"root_hash\":\"");
		g_assert_nonnull (p);
		p += strlen ("\"root_hash\":\"");
		*p = *p == 'A' ? 'B' : 'A';
		g_assert_true (g_file_set_contents (saved, forged->str, -1, NULL));
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);
		rc = ppn_test_fleet_ppnctl (fleet, fleet->token1, &out, &err, "audit", "--key", key, "--tree-head",
					    saved, NULL);
		g_test_message ("forged head: %d %s", rc, err);
		g_assert_cmpint (rc, !=, 0);
	}
}

/* kill -9 the moment the 201 arrives: both records are there, the file
 * and the ledger survive two restarts whole, and indices go on */
static void
test_kill_after_201 (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 20};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *audit = state_path (fleet, "audit.log");
	g_autofree gchar *ledger = state_path (fleet, "ledger/ledger");
	g_autofree gchar *out = NULL;
	g_autofree gchar *id = NULL;
	GStatBuf before, after;
	gint64 receipt = -1, later = -1;

	id = create_vm (fleet, fleet->token1, "crash", &receipt);
	ppn_test_fleet_stop_fleetd (fleet, SIGKILL);
	{
		g_autoptr(GPtrArray) lines = read_lines (audit, NULL);
		JsonObject *line = line_at (lines, receipt);
		g_assert_nonnull (line);
		g_assert_cmpstr (str (line, "vm_id"), ==, id);
		g_assert_cmpstr (str (line, "outcome"), ==, "success");
	}
	g_assert_cmpint (ledger_verify (fleet, &out), ==, 0);
	g_assert_cmpint (g_stat (audit, &before), ==, 0);
	g_assert_cmpint (g_stat (ledger, &after), ==, 0);

	for (guint round = 0; round < 2; round++) {
		GStatBuf a, l;
		g_autoptr(GError) error = NULL;
		ppn_test_fleet_start_fleetd (fleet, &error);
		g_assert_no_error (error);
		ppn_test_fleet_wait_node (fleet, 30, &error);
		g_assert_no_error (error);
		g_assert_cmpint (g_stat (audit, &a), ==, 0);
		g_assert_cmpint (g_stat (ledger, &l), ==, 0);
		g_assert_cmpint (a.st_size, >=, before.st_size);
		g_assert_cmpint (l.st_size, >=, after.st_size);
		ppn_test_fleet_stop_fleetd (fleet, round == 0 ? SIGTERM : SIGKILL);
	}
	{
		g_autoptr(GError) error = NULL;
		ppn_test_fleet_start_fleetd (fleet, &error);
		g_assert_no_error (error);
		ppn_test_fleet_wait_node (fleet, 30, &error);
		g_assert_no_error (error);
	}
	g_free (create_vm (fleet, fleet->token1, "after", &later));
	g_assert_cmpint (later, >, receipt);
	{
		g_autoptr(GPtrArray) lines = read_lines (audit, NULL);
		g_assert_nonnull (line_at (lines, receipt));
		g_assert_nonnull (line_at (lines, later));
		g_assert_cmpint (lines->len, ==, later + 1);
	}
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (ledger_verify (fleet, &out), ==, 0);
}

/* a sink that cannot be written: creates and deletes get 503 and nothing
 * happens on the node; both work again once it can */
static void
assert_refused_then_recovers (PpnTestFleet *fleet, const gchar *existing, const gchar *break_cmd, const gchar *mend_cmd)
{
	g_autofree gchar *path = g_strconcat ("/v1/vms/", existing, NULL);
	guint domains = ppn_test_node_domains_of (fleet, "alice");
	g_autofree gchar *raw = NULL;
	guint status = 0;

	g_assert_true (ppn_test_sh (break_cmd));
	/* a full disk may still take what fits in a page a file already has:
	 * the first creates can succeed until the first record that does not */
	for (guint i = 0; i < 20; i++) {
		g_autofree gchar *name = g_strdup_printf ("during%u", i);
		g_autofree gchar *body = g_strdup_printf ("{\"name\":\"%s\",\"image\":\"test-guest\"}", name);
		g_autoptr(JsonNode) r = NULL;
		g_clear_pointer (&raw, g_free);
		r = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, &raw);
		g_test_message ("create with a broken sink: %u %s", status, raw);
		if (status != 201)
			break;
		domains++;
	}
	g_assert_cmpuint (status, ==, 503);
	g_assert_nonnull (strstr (raw, "\"unavailable\""));
	g_assert_nonnull (strstr (raw, "audit trail"));
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 503);
	}
	/* a domain whose success could not be recorded is destroyed again */
	for (guint i = 0; i < 50 && ppn_test_node_domains_of (fleet, "alice") != domains; i++)
		g_usleep (100000);
	g_assert_cmpuint (ppn_test_node_domains_of (fleet, "alice"), ==, domains);
	{
		g_autoptr(JsonNode) q = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (q), "used"), ==, domains);
	}
	g_assert_true (ppn_test_sh (mend_cmd));
	g_free (create_vm (fleet, fleet->token1, "after", NULL));
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
	g_assert_cmpuint (ppn_test_node_domains_of (fleet, "alice"), ==, domains);
}

static void
test_file_unwritable (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 20};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *audit = state_path (fleet, "audit.log");
	/* where the file was, a directory: nothing can be appended there */
	g_autofree gchar *break_cmd = g_strdup_printf ("mv '%s' '%s.1' && mkdir '%s'", audit, audit, audit);
	g_autofree gchar *mend_cmd = g_strdup_printf ("rmdir '%s'", audit);
	g_autofree gchar *id = create_vm (fleet, fleet->token1, "before", NULL);
	g_autofree gchar *out = NULL;

	assert_refused_then_recovers (fleet, id, break_cmd, mend_cmd);
	g_assert_cmpint (ledger_verify (fleet, &out), ==, 0);
}

static void
test_ledger_unwritable (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 20};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = NULL;
	g_autofree gchar *mnt = g_build_filename (g_get_tmp_dir (), "ppn-test-ledger-XXXXXX", NULL);
	g_autofree gchar *ledger_dir = NULL, *extra = NULL, *mount = NULL, *fill = NULL, *unfill = NULL;
	g_autofree gchar *umount = NULL, *id = NULL, *out = NULL, *err = NULL;
	gint rc;

	g_assert_nonnull (g_mkdtemp (mnt));
	mount = g_strdup_printf ("mount -t tmpfs -o size=256k ppn-test-full '%s'", mnt);
	umount = g_strdup_printf ("umount -l '%s' && rmdir '%s'", mnt, mnt);
	if (!ppn_test_sh (mount)) {
		g_test_skip ("cannot mount a tmpfs here (not root?)");
		return;
	}
	ledger_dir = g_build_filename (mnt, "ledger", NULL);
	extra = g_strdup_printf ("ledger-dir=%s\n", ledger_dir);
	opts.fleet_extra = extra;
	fleet = ppn_test_fleet_new (&opts, &error);
	g_assert_no_error (error);
	ppn_test_fleet_start (fleet, &error);
	g_assert_no_error (error);
	fill = g_strdup_printf ("dd if=/dev/zero of='%s/filler' bs=4k 2>/dev/null; sync", mnt);
	unfill = g_strdup_printf ("rm -f '%s/filler'", mnt);
	id = create_vm (fleet, fleet->token1, "before", NULL);
	assert_refused_then_recovers (fleet, id, fill, unfill);
	rc = ppn_test_fleet_ppnctl (fleet, NULL, &out, &err, "ledger", "verify", ledger_dir, NULL);
	g_test_message ("ledger verify: %d %s%s", rc, out, err);
	g_assert_cmpint (rc, ==, 0);
	ppn_test_fleet_stop_fleetd (fleet, SIGTERM);
	ppn_test_sh (umount);
}

/* the file renamed away during 100 concurrent creates, then a SIGHUP
 * rotation: the files together hold every entry exactly once, in order,
 * and the ledger verifies from its first entry */
static void
test_rotation (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 150,
				    .fleet_extra = "max-inflight=200\n", .capacity_vcpus = 128};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *audit = state_path (fleet, "audit.log");
	g_autofree gchar *rotated1 = g_strconcat (audit, ".1", NULL);
	g_autofree gchar *rotated2 = g_strconcat (audit, ".2", NULL);
	g_autoptr(PpnTestBurst) burst = NULL;
	g_autoptr(GPtrArray) lines = NULL;
	g_autofree gchar *out = NULL;
	gint64 size;
	guint before_rename = 0;

	burst = ppn_test_burst_start (fleet, fleet->token1, "rot", 100);
	/* rename once the burst is well under way: some records written */
	for (guint i = 0; i < 2000 && before_rename < 40; i++) {
		g_autoptr(GPtrArray) now = read_lines (audit, NULL);
		before_rename = now->len;
		g_usleep (2000);
	}
	g_assert_cmpint (g_rename (audit, rotated1), ==, 0);
	ppn_test_burst_join (burst);
	g_test_message ("renamed after %u records; %u created, %u over quota, %u too many, %u other", before_rename,
			burst->created, burst->quota, burst->too_many, burst->other);
	g_assert_cmpuint (burst->created, ==, 100);

	/* the logrotate way: rename, then SIGHUP */
	g_assert_cmpint (g_rename (audit, rotated2), ==, 0);
	g_assert_cmpint (kill (g_ascii_strtoll (g_subprocess_get_identifier (fleet->fleetd), NULL, 10), SIGHUP), ==, 0);
	g_usleep (200000);
	g_free (create_vm (fleet, fleet->token1, "after-hup", NULL));
	g_assert_true (g_file_test (audit, G_FILE_TEST_EXISTS));

	size = tree_size (fleet);
	lines = read_lines (rotated1, rotated2, audit, NULL);
	{
		g_autoptr(GPtrArray) first = read_lines (rotated1, NULL);
		g_autoptr(GPtrArray) second = read_lines (rotated2, NULL);
		g_autoptr(GPtrArray) third = read_lines (audit, NULL);
		g_test_message ("records: %u + %u + %u, ledger %" G_GINT64_FORMAT, first->len, second->len, third->len,
				size);
		g_assert_cmpuint (first->len, >=, before_rename);
		g_assert_cmpuint (second->len, >, 0);
		g_assert_cmpuint (third->len, >, 0);
	}
	/* every entry exactly once, in order: none lost, none doubled */
	g_assert_cmpint (lines->len, ==, size);
	for (guint i = 0; i < lines->len; i++)
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (g_ptr_array_index (lines, i)), "index"),
				 ==, i);
	g_assert_cmpint (ledger_verify (fleet, &out), ==, 0);
}

/* a create the node carried out but whose success cannot be recorded:
 * the tenant gets 503 and the domain is destroyed again. The agent is
 * paused so the trail can break between the intent and the outcome. */
static void
test_unrecorded_create_undone (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 20};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *audit = state_path (fleet, "audit.log");
	g_autofree gchar *moved = g_strconcat (audit, ".1", NULL);
	GPid agent = (GPid)g_ascii_strtoll (g_subprocess_get_identifier (fleet->agentd), NULL, 10);
	g_autoptr(PpnTestBurst) burst = NULL;
	guint requested = 0;

	g_assert_cmpuint (ppn_test_node_domains_of (fleet, "alice"), ==, 0);
	g_assert_cmpint (kill (agent, SIGSTOP), ==, 0);
	burst = ppn_test_burst_start (fleet, fleet->token1, "undone", 1);
	for (guint i = 0; i < 500 && requested == 0; i++) {
		g_autoptr(GPtrArray) lines = read_lines (audit, NULL);
		for (guint j = 0; j < lines->len; j++)
			if (g_strcmp0 (str (json_node_get_object (g_ptr_array_index (lines, j)), "outcome"), "requested") == 0)
				requested++;
		g_usleep (10000);
	}
	g_assert_cmpuint (requested, ==, 1);
	/* the intent is on the record, the node is busy: now the trail breaks */
	g_assert_cmpint (g_rename (audit, moved), ==, 0);
	g_assert_cmpint (g_mkdir (audit, 0700), ==, 0);
	g_assert_cmpint (kill (agent, SIGCONT), ==, 0);
	ppn_test_burst_join (burst);
	g_assert_cmpuint (burst->created, ==, 0);
	g_assert_cmpuint (burst->other, ==, 1);
	for (guint i = 0; i < 50 && ppn_test_node_domains_of (fleet, "alice") != 0; i++)
		g_usleep (100000);
	g_assert_cmpuint (ppn_test_node_domains_of (fleet, "alice"), ==, 0);
	{
		guint status = 0;
		g_autoptr(JsonNode) q = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (q), "used"), ==, 0);
	}
	g_assert_cmpint (g_rmdir (audit), ==, 0);
	g_free (create_vm (fleet, fleet->token1, "after", NULL));
}

/* what a tenant or anyone sends is not what goes on the record: ids that
 * are not ids (bytes that are not UTF-8, a token), methods that are not
 * methods; a flood of failed logins is counted, not written one by one;
 * and the fleet starts again afterwards */
static void
test_hostile_input (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 5};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *audit = state_path (fleet, "audit.log");
	g_autofree gchar *token_path = g_strconcat ("/v1/vms/", fleet->token2, NULL);
	g_autoptr(GPtrArray) lines = NULL;
	g_autoptr(GError) error = NULL;
	guint status = 0, individual = 0, flood_seconds;
	gint64 counted = 0, flood_start;

	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/vms/%C0%AF", NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", token_path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, NULL, "X\"}evil", "/v1/vms", NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 401);
	}
	flood_start = g_get_monotonic_time ();
	for (guint i = 0; i < 100; i++) {
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, "wrong", "GET", token_path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 401);
	}
	flood_seconds = (guint)((g_get_monotonic_time () - flood_start) / G_USEC_PER_SEC);
	g_usleep (1500 * 1000); /* the last second's count is written */

	ppn_test_fleet_stop_fleetd (fleet, SIGTERM);
	{
		g_autofree gchar *data = NULL;
		g_autofree gchar *ledger = state_path (fleet, "ledger/ledger");
		g_autofree gchar *ldata = NULL;
		gsize llen = 0;
		g_assert_true (g_file_get_contents (audit, &data, NULL, NULL));
		g_assert_true (g_utf8_validate (data, -1, NULL));
		g_assert_null (strstr (data, fleet->token2));
		g_assert_null (strstr (data, "evil"));
		g_assert_true (g_file_get_contents (ledger, &ldata, &llen, NULL));
		g_assert_null (g_strstr_len (ldata, (gssize)llen, fleet->token2));
	}
	lines = read_lines (audit, NULL);
	for (guint i = 0; i < lines->len; i++) {
		JsonObject *line = json_node_get_object (g_ptr_array_index (lines, i));
		if (g_strcmp0 (str (line, "op"), "authenticate") != 0) {
			/* the two lookups: refused, nothing of the id recorded */
			g_assert_null (str (line, "vm_id"));
			g_assert_cmpstr (str (line, "detail"), ==, "not a VM id");
			continue;
		}
		if (json_object_has_member (line, "count")) {
			counted += json_object_get_int_member (line, "count");
		} else {
			individual++;
			g_assert_true (g_str_has_prefix (str (line, "detail"), "GET /v1/vms/{id}: ") ||
				       g_str_has_prefix (str (line, "detail"), "other /v1/vms: "));
		}
	}
	g_test_message ("101 refused logins in %u s: %u recorded one by one, %" G_GINT64_FORMAT " counted",
			flood_seconds, individual, counted);
	/* 20 a second one by one, the rest counted (and the odd method) */
	g_assert_cmpuint (individual, <=, 20 * (flood_seconds + 2) + 1);
	g_assert_cmpint (individual + counted, ==, 101);

	/* and it starts again, and lists the tenant's entries */
	ppn_test_fleet_start_fleetd (fleet, &error);
	g_assert_no_error (error);
	{
		g_autoptr(JsonNode) page = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/audit", NULL, &status,
								NULL);
		g_assert_cmpuint (status, ==, 200);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (page), "entries")),
				  ==, 2);
	}
	{
		g_autofree gchar *text = ppn_test_fleet_mesh_get_text (fleet, PPN_TLS_ROLE_OPERATOR, "prom", "/metrics",
									&status);
		g_assert_cmpuint (status, ==, 200);
		g_assert_null (strstr (text, "evil"));
	}
}

/* what a crash can leave at the end of the audit file: a line the ledger
 * never took (and a torn one), or a line lost that the ledger has. At
 * start the first are taken back and the second written again, so the
 * file holds every ledger entry once, in order */
static void
test_crash_leftovers (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 5};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *audit = state_path (fleet, "audit.log");
	g_autofree gchar *data = NULL;
	g_autoptr(GString) edited = NULL;
	g_autoptr(GPtrArray) lines = NULL;
	g_autoptr(GError) error = NULL;
	gchar *last_line;

	g_free (create_vm (fleet, fleet->token1, "one", NULL));
	ppn_test_fleet_stop_fleetd (fleet, SIGKILL);
	g_assert_true (g_file_get_contents (audit, &data, NULL, NULL));
	/* the outcome's line lost, a line of an entry the ledger never got,
	 * and half a line */
	edited = g_string_new (data);
	g_string_truncate (edited, edited->len - 1);
	last_line = strrchr (edited->str, '\n');
	g_assert_nonnull (last_line);
	g_string_truncate (edited, (gsize)(last_line - edited->str) + 1);
	g_string_append (edited, "{\"index\":2,\"op\":\"create\",\"outcome\":\"requested\"}\n{\"index\":3,\"op");
	g_assert_true (g_file_set_contents (audit, edited->str, (gssize)edited->len, NULL));

	ppn_test_fleet_start_fleetd (fleet, &error);
	g_assert_no_error (error);
	ppn_test_fleet_wait_node (fleet, 30, &error);
	g_assert_no_error (error);
	g_free (create_vm (fleet, fleet->token1, "two", NULL));
	lines = read_lines (audit, NULL);
	g_assert_cmpint (lines->len, ==, tree_size (fleet));
	for (guint i = 0; i < lines->len; i++)
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (g_ptr_array_index (lines, i)), "index"),
				 ==, i);
	g_assert_cmpstr (str (line_at (lines, 1), "detail"), ==, "recovered from the ledger after a crash");
	g_assert_cmpstr (str (line_at (lines, 1), "outcome"), ==, "success");
	g_assert_cmpstr (str (line_at (lines, 2), "vm_name"), ==, "two");
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/audit/trail", test_trail);
	g_test_add_func ("/audit/consistency", test_consistency);
	g_test_add_func ("/audit/kill-after-201", test_kill_after_201);
	g_test_add_func ("/audit/file-unwritable", test_file_unwritable);
	g_test_add_func ("/audit/ledger-unwritable", test_ledger_unwritable);
	g_test_add_func ("/audit/unrecorded-create-undone", test_unrecorded_create_undone);
	g_test_add_func ("/audit/rotation", test_rotation);
	g_test_add_func ("/audit/hostile-input", test_hostile_input);
	g_test_add_func ("/audit/crash-leftovers", test_crash_leftovers);
	return g_test_run ();
}
