/* Unit tests of the fleet controller's parts: request schema, store,
 * registry, tenants file, configuration (placement: test-placement). */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "ppn-error.h"
#include "ppn-fleet-config.h"
#include "ppn-http.h"
#include "ppn-json.h"
#include "ppn-registry.h"
#include "ppn-store.h"
#include "ppn-tenants-file.h"
#include "ppn-token.h"
#include "ppn-vm.h"

static const PpnVmLimits limits = {.max_vcpus = 8, .max_memory_mib = 4096, .max_forwards = 4};

static gchar *
make_tmpdir (void)
{
	g_autoptr(GError) error = NULL;
	gchar *dir = g_dir_make_tmp ("ppn-test-fleet-XXXXXX", &error);

	g_assert_no_error (error);
	return dir;
}

static void
rm_rf (const gchar *dir)
{
	const gchar *argv[] = {"rm", "-rf", dir, NULL};
	g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

static PpnVmRequest *
parse_request (const gchar *json, GError **error)
{
	g_autoptr(JsonNode) node = ppn_json_parse_object (json, strlen (json), PPN_JSON_MAX_DEPTH, error);

	if (node == NULL)
		return NULL;
	return ppn_vm_request_from_json (json_node_get_object (node), &limits, error);
}

static void
test_request_defaults (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnVmRequest) req = parse_request ("{\"name\":\"web-1\",\"image\":\"test-guest\"}", &error);

	g_assert_no_error (error);
	g_assert_cmpstr (req->name, ==, "web-1");
	g_assert_cmpstr (req->image, ==, "test-guest");
	g_assert_cmpuint (req->vcpus, ==, 1);
	g_assert_cmpuint (req->memory_mib, ==, 256);
	g_assert_cmpuint (req->forwards->len, ==, 0);
	/* no accelerator required */
	g_assert_null (req->accel);
}

static void
test_request_full (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnVmRequest) req = parse_request (
		"{\"name\":\"db\",\"image\":\"test-guest\",\"vcpus\":8,\"memory_mib\":4096,"
		"\"port_forwards\":[{\"guest_port\":5432},{\"guest_port\":53,\"proto\":\"udp\"}],"
		"\"accel\":\"kvm\"}",
		&error);
	PpnForward *f;

	g_assert_no_error (error);
	g_assert_cmpstr (req->accel, ==, "kvm");
	g_assert_cmpuint (req->vcpus, ==, 8);
	g_assert_cmpuint (req->memory_mib, ==, 4096);
	g_assert_cmpuint (req->forwards->len, ==, 2);
	f = g_ptr_array_index (req->forwards, 0);
	g_assert_cmpuint (f->guest_port, ==, 5432);
	g_assert_cmpstr (f->proto, ==, "tcp");
	f = g_ptr_array_index (req->forwards, 1);
	g_assert_cmpstr (f->proto, ==, "udp");
}

static void
test_request_limits (void)
{
	const gchar *bad[] = {
		"{\"name\":\"x\",\"image\":\"i\",\"vcpus\":9}",
		"{\"name\":\"x\",\"image\":\"i\",\"memory_mib\":4097}",
		"{\"name\":\"x\",\"image\":\"i\",\"memory_mib\":63}",
		"{\"name\":\"x\",\"image\":\"i\",\"port_forwards\":[{\"guest_port\":1},{\"guest_port\":2},"
		"{\"guest_port\":3},{\"guest_port\":4},{\"guest_port\":5}]}",
		"{\"name\":\"x\",\"image\":\"i\",\"port_forwards\":[{\"guest_port\":1},{\"guest_port\":1}]}",
		"{\"name\":\"x\",\"image\":\"i\",\"port_forwards\":{}}",
		"{\"name\":\"x\",\"image\":\"i\",\"owner\":\"bob\"}",
		"{\"name\":\"-x\",\"image\":\"i\"}",
		"{\"name\":\"x\",\"image\":\"a/b\"}",
		"{\"name\":\"x\",\"image\":\"..\"}",
		"{\"name\":null,\"image\":\"i\"}",
		"{\"name\":\"x\",\"image\":\"i\",\"vcpus\":true}",
		/* accel: exactly kvm or tcg, when given */
		"{\"name\":\"x\",\"image\":\"i\",\"accel\":\"KVM\"}",
		"{\"name\":\"x\",\"image\":\"i\",\"accel\":\"auto\"}",
		"{\"name\":\"x\",\"image\":\"i\",\"accel\":null}",
		"{\"name\":\"x\",\"image\":\"i\",\"accel\":1}",
		NULL,
	};

	for (guint i = 0; bad[i] != NULL; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnVmRequest) req = parse_request (bad[i], &error);
		g_assert_null (req);
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	}
}

static PpnVm *
make_vm (const gchar *id, const gchar *tenant, const gchar *name, gint64 created)
{
	PpnVmRequest req = {.name = (gchar *)name, .image = (gchar *)"test-guest", .vcpus = 1, .memory_mib = 128};
	g_autoptr(GPtrArray) fwds = ppn_forwards_new ();

	g_ptr_array_add (fwds, ppn_forward_new (80, "tcp"));
	req.forwards = fwds;
	return ppn_vm_new (id, tenant, &req, created);
}

static void
test_store_roundtrip (void)
{
	g_autofree gchar *dir = make_tmpdir ();
	g_autofree gchar *path = g_build_filename (dir, "fleet.db", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnVm) vm = make_vm ("0123456789abcdef", "alice", "web", 1000000);
	g_autoptr(PpnVm) deleted = make_vm ("fedcba9876543210", "bob", "gone", 2000000);

	{
		g_autoptr(PpnStore) store = ppn_store_new ();
		PpnForward *f;
		ppn_store_open (store, path, &error);
		g_assert_no_error (error);
		ppn_store_insert_vm (store, vm, &error);
		g_assert_no_error (error);
		/* the same id twice is refused */
		g_assert_false (ppn_store_insert_vm (store, vm, &error));
		g_assert_nonnull (error);
		g_clear_error (&error);
		vm->state = PPN_VM_STATE_RUNNING;
		vm->node = g_strdup ("node1");
		f = g_ptr_array_index (vm->forwards, 0);
		f->host_address = g_strdup ("127.0.0.1");
		f->host_port = 20000;
		ppn_store_update_vm (store, vm, &error);
		g_assert_no_error (error);
		ppn_store_insert_vm (store, deleted, &error);
		g_assert_no_error (error);
		deleted->state = PPN_VM_STATE_DELETED;
		ppn_store_update_vm (store, deleted, &error);
		g_assert_no_error (error);
	}
	/* a new process sees what the old one acknowledged */
	{
		g_autoptr(PpnStore) store = ppn_store_new ();
		g_autoptr(GPtrArray) live = NULL;
		g_autoptr(GPtrArray) all = NULL;
		PpnVm *back;
		PpnForward *f;

		ppn_store_open (store, path, &error);
		g_assert_no_error (error);
		live = ppn_store_load_vms (store, FALSE, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (live->len, ==, 1);
		back = g_ptr_array_index (live, 0);
		g_assert_cmpstr (back->id, ==, vm->id);
		g_assert_cmpstr (back->tenant, ==, "alice");
		g_assert_cmpstr (back->node, ==, "node1");
		g_assert_cmpint (back->state, ==, PPN_VM_STATE_RUNNING);
		g_assert_cmpint (back->created_at, ==, 1000000);
		g_assert_cmpuint (back->forwards->len, ==, 1);
		f = g_ptr_array_index (back->forwards, 0);
		g_assert_cmpuint (f->host_port, ==, 20000);
		g_assert_cmpstr (f->host_address, ==, "127.0.0.1");
		all = ppn_store_load_vms (store, TRUE, &error);
		g_assert_cmpuint (all->len, ==, 2);

		/* the owner of a record never changes */
		g_free (back->tenant);
		back->tenant = g_strdup ("mallory");
		g_assert_false (ppn_store_update_vm (store, back, &error));
		g_assert_nonnull (error);
	}
	rm_rf (dir);
}

static void
test_store_newer_schema (void)
{
	g_autofree gchar *dir = make_tmpdir ();
	g_autofree gchar *path = g_build_filename (dir, "fleet.db", NULL);
	g_autoptr(GError) error = NULL;
	const gchar *argv[] = {"sqlite3", path, "PRAGMA user_version = 99;", NULL};
	g_autoptr(PpnStore) store = ppn_store_new ();
	gint status = -1;

	if (!g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL)) {
		g_test_skip ("no sqlite3 command");
		rm_rf (dir);
		return;
	}
	g_assert_false (ppn_store_open (store, path, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INTERNAL);
	g_assert_nonnull (strstr (error->message, "99"));
	rm_rf (dir);
}

/* a database of schema 1 (before egress) is migrated, its VMs 'nat' */
static void
test_store_migrate_v1 (void)
{
	g_autofree gchar *dir = make_tmpdir ();
	g_autofree gchar *path = g_build_filename (dir, "fleet.db", NULL);
	g_autoptr(GError) error = NULL;
	const gchar *sql =
		"CREATE TABLE vms (id TEXT PRIMARY KEY NOT NULL, tenant TEXT NOT NULL, name TEXT NOT NULL,"
		" image TEXT NOT NULL, vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, state TEXT NOT NULL,"
		" node TEXT, port_forwards TEXT NOT NULL DEFAULT '[]', created_at INTEGER NOT NULL,"
		" updated_at INTEGER NOT NULL);"
		"INSERT INTO vms VALUES ('0123456789abcdef','alice','old','test-guest',1,128,'running','n1','[]',1,1);"
		"PRAGMA user_version = 1;";
	const gchar *argv[] = {"sqlite3", path, sql, NULL};
	g_autoptr(PpnStore) store = ppn_store_new ();
	g_autoptr(GPtrArray) vms = NULL;
	gint status = -1;

	if (!g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL) ||
	    !g_spawn_check_wait_status (status, NULL)) {
		g_test_skip ("no sqlite3 command");
		rm_rf (dir);
		return;
	}
	ppn_store_open (store, path, &error);
	g_assert_no_error (error);
	vms = ppn_store_load_vms (store, FALSE, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (vms->len, ==, 1);
	g_assert_cmpstr (((PpnVm *)g_ptr_array_index (vms, 0))->tenant, ==, "alice");
	g_assert_cmpstr (((PpnVm *)g_ptr_array_index (vms, 0))->egress, ==, "nat");
	rm_rf (dir);
}

static void
test_registry (void)
{
	g_autoptr(PpnRegistry) reg = ppn_registry_new ();
	g_autoptr(PpnVm) a1 = make_vm ("000000000000000a", "alice", "a1", 30);
	g_autoptr(PpnVm) a2 = make_vm ("000000000000000b", "alice", "a2", 10);
	g_autoptr(PpnVm) a3 = make_vm ("000000000000000c", "alice", "a3", 20);
	g_autoptr(PpnVm) b1 = make_vm ("000000000000000d", "bob", "a1", 5);
	g_autoptr(GPtrArray) page = NULL;
	gboolean more = FALSE;

	ppn_registry_add (reg, a1);
	ppn_registry_add (reg, a2);
	ppn_registry_add (reg, a3);
	ppn_registry_add (reg, b1);
	g_assert_cmpuint (ppn_registry_get_size (reg), ==, 4);
	g_assert_cmpuint (ppn_registry_count_tenant (reg, "alice"), ==, 3);
	g_assert_cmpuint (ppn_registry_count_tenant (reg, "bob"), ==, 1);
	g_assert_cmpuint (ppn_registry_count_tenant (reg, "carol"), ==, 0);
	g_assert_true (ppn_registry_find_by_name (reg, "alice", "a1") == a1);
	g_assert_true (ppn_registry_find_by_name (reg, "bob", "a1") == b1);

	/* ordered by creation, paged, and only the tenant's own */
	page = ppn_registry_list_page (reg, "alice", 0, NULL, 2, &more);
	g_assert_cmpuint (page->len, ==, 2);
	g_assert_true (more);
	g_assert_true (g_ptr_array_index (page, 0) == a2);
	g_assert_true (g_ptr_array_index (page, 1) == a3);
	g_clear_pointer (&page, g_ptr_array_unref);
	page = ppn_registry_list_page (reg, "alice", a3->created_at, a3->id, 2, &more);
	g_assert_cmpuint (page->len, ==, 1);
	g_assert_false (more);
	g_assert_true (g_ptr_array_index (page, 0) == a1);
	g_clear_pointer (&page, g_ptr_array_unref);
	/* a cursor taken from bob's list positions inside alice's, nothing more */
	page = ppn_registry_list_page (reg, "alice", b1->created_at, b1->id, 10, &more);
	g_assert_cmpuint (page->len, ==, 3);
	for (guint i = 0; i < page->len; i++)
		g_assert_cmpstr (((PpnVm *)g_ptr_array_index (page, i))->tenant, ==, "alice");
	g_clear_pointer (&page, g_ptr_array_unref);

	ppn_registry_remove (reg, a3);
	g_assert_null (ppn_registry_lookup (reg, a3->id));
	g_assert_cmpuint (ppn_registry_count_tenant (reg, "alice"), ==, 2);
	ppn_registry_remove (reg, b1);
	g_assert_cmpuint (ppn_registry_count_tenant (reg, "bob"), ==, 0);
	page = ppn_registry_list_page (reg, "bob", 0, NULL, 10, &more);
	g_assert_cmpuint (page->len, ==, 0);
}

static gchar *
write_tenants (const gchar *dir, const gchar *contents)
{
	gchar *path = g_build_filename (dir, "tenants.conf", NULL);
	g_autoptr(GError) error = NULL;

	g_file_set_contents (path, contents, -1, &error);
	g_assert_no_error (error);
	return path;
}

static void
test_tenants_file (void)
{
	g_autofree gchar *dir = make_tmpdir ();
	g_autoptr(GError) error = NULL;
	g_autofree gchar *tok_a = ppn_token_new (NULL);
	g_autofree gchar *tok_b = ppn_token_new (NULL);
	g_autofree gchar *hash_a = ppn_token_hash (tok_a);
	g_autofree gchar *hash_b = ppn_token_hash (tok_b);
	g_autofree gchar *contents = g_strdup_printf ("# demo\n[tenant alice]\ntoken-hash=%s\nmax-vms=3\n"
						      "[tenant bob]\ntoken-hash=%s\n",
						      hash_a, hash_b);
	g_autofree gchar *path = write_tenants (dir, contents);
	g_autoptr(PpnTenantsFile) file = ppn_tenants_file_load (path, &error);
	g_autofree gchar *truncated = g_strndup (tok_a, strlen (tok_a) - 1);
	g_autofree gchar *longer = g_strconcat (tok_a, "x", NULL);
	g_autoptr(PpnTenant) a = NULL;
	g_autoptr(PpnTenant) b = NULL;

	g_assert_no_error (error);
	g_assert_cmpuint (ppn_tenants_file_get_size (file), ==, 2);
	a = ppn_tenants_file_authenticate (file, tok_a);
	g_assert_nonnull (a);
	g_assert_cmpstr (ppn_tenant_get_name (a), ==, "alice");
	g_assert_cmpuint (ppn_tenant_get_max_vms (a), ==, 3);
	b = ppn_tenants_file_authenticate (file, tok_b);
	g_assert_cmpstr (ppn_tenant_get_name (b), ==, "bob");
	g_assert_cmpuint (ppn_tenant_get_max_vms (b), ==, 4);
	g_assert_null (ppn_tenants_file_authenticate (file, truncated));
	g_assert_null (ppn_tenants_file_authenticate (file, longer));
	g_assert_null (ppn_tenants_file_authenticate (file, ""));
	/* the hash itself is not a credential */
	g_assert_null (ppn_tenants_file_authenticate (file, hash_a));
	/* and the file holds no token */
	g_assert_null (strstr (contents, tok_a));
	rm_rf (dir);
}

static void
test_tenants_file_bad (void)
{
	g_autofree gchar *hash = ppn_token_hash ("ppn_x");
	g_autofree gchar *dup = g_strdup_printf ("[tenant a]\ntoken-hash=%s\n[tenant b]\ntoken-hash=%s\n", hash, hash);
	g_autofree gchar *badname = g_strdup_printf ("[tenant a/b]\ntoken-hash=%s\n", hash);
	g_autofree gchar *badkey = g_strdup_printf ("[tenant a]\ntoken-hash=%s\ntoken=ppn_x\n", hash);
	g_autofree gchar *badmax = g_strdup_printf ("[tenant a]\ntoken-hash=%s\nmax-vms=-1\n", hash);
	const gchar *bad[] = {dup, badname, badkey, badmax, "[tenant a]\ntoken-hash=md5:abc\n", "[other]\nx=1\n", NULL};

	for (guint i = 0; bad[i] != NULL; i++) {
		g_autofree gchar *dir = make_tmpdir ();
		g_autofree gchar *path = write_tenants (dir, bad[i]);
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnTenantsFile) file = ppn_tenants_file_load (path, &error);
		g_assert_null (file);
		g_assert_nonnull (error);
		g_test_message ("%s", error->message);
		/* an error never echoes a secret-looking value */
		g_assert_null (strstr (error->message, "ppn_x"));
		rm_rf (dir);
	}
}

static void
test_config (void)
{
	g_autofree gchar *dir = make_tmpdir ();
	g_autofree gchar *path = g_build_filename (dir, "fleetd.conf", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFleetConfig) config = NULL;
	g_autofree gchar *expect_tenants = g_build_filename (dir, "tenants.conf", NULL);

	g_file_set_contents (path, "[fleet]\ntenants-file=tenants.conf\n[tls]\nca=/etc/x/ca.pem\n", -1, NULL);
	config = ppn_fleet_config_load (path, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (config->tenant_listen, ==, "127.0.0.1:8443");
	g_assert_cmpstr (config->mesh_listen, ==, "127.0.0.1:9443");
	g_assert_cmpstr (config->tenants_file, ==, expect_tenants);
	g_assert_cmpstr (config->tls_ca, ==, "/etc/x/ca.pem");
	g_assert_cmpuint (config->max_forwards, ==, 8);
	g_assert_cmpint (config->placement, ==, PPN_PLACEMENT_SPREAD);
	g_clear_pointer (&config, ppn_fleet_config_free);

	g_file_set_contents (path, "[fleet]\ntenant-listen=0.0.0.0\n", -1, NULL);
	g_assert_null (ppn_fleet_config_load (path, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_file_set_contents (path, "[fleet]\ntenant-lisen=127.0.0.1:1\n", -1, NULL);
	g_assert_null (ppn_fleet_config_load (path, &error));
	g_assert_nonnull (strstr (error->message, "tenant-lisen"));
	g_clear_error (&error);
	g_file_set_contents (path, "[fleet]\nmax-vcpus=0\n", -1, NULL);
	g_assert_null (ppn_fleet_config_load (path, &error));
	g_clear_error (&error);
	/* placement: spread unless pack is asked for */
	g_file_set_contents (path, "[fleet]\nplacement=pack\n", -1, NULL);
	config = ppn_fleet_config_load (path, &error);
	g_assert_no_error (error);
	g_assert_cmpint (config->placement, ==, PPN_PLACEMENT_PACK);
	g_clear_pointer (&config, ppn_fleet_config_free);
	g_file_set_contents (path, "[fleet]\nplacement=binpack\n", -1, NULL);
	g_assert_null (ppn_fleet_config_load (path, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "binpack"));
	g_clear_error (&error);

	/* keep-alive: auto follows the libsoup in use (3.2 leaks connections) */
	g_file_set_contents (path, "[fleet]\n", -1, NULL);
	config = ppn_fleet_config_load (path, &error);
	g_assert_no_error (error);
	g_assert_cmpint (config->http_keep_alive, ==, ppn_http_keep_alive_is_safe ());
	g_assert_cmpint (ppn_http_keep_alive_is_safe (), ==, soup_get_minor_version () >= 3);
	g_clear_pointer (&config, ppn_fleet_config_free);
	g_file_set_contents (path, "[fleet]\nhttp-keep-alive=yes\n", -1, NULL);
	config = ppn_fleet_config_load (path, &error);
	g_assert_no_error (error);
	g_assert_true (config->http_keep_alive);
	g_clear_pointer (&config, ppn_fleet_config_free);
	g_file_set_contents (path, "[fleet]\nhttp-keep-alive=maybe\n", -1, NULL);
	g_assert_null (ppn_fleet_config_load (path, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	rm_rf (dir);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/fleet/request/defaults", test_request_defaults);
	g_test_add_func ("/fleet/request/full", test_request_full);
	g_test_add_func ("/fleet/request/limits", test_request_limits);
	g_test_add_func ("/fleet/store/roundtrip", test_store_roundtrip);
	g_test_add_func ("/fleet/store/newer-schema", test_store_newer_schema);
	g_test_add_func ("/fleet/store/migrate-v1", test_store_migrate_v1);
	g_test_add_func ("/fleet/registry", test_registry);
	g_test_add_func ("/fleet/tenants-file/authenticate", test_tenants_file);
	g_test_add_func ("/fleet/tenants-file/bad", test_tenants_file_bad);
	g_test_add_func ("/fleet/config", test_config);
	return g_test_run ();
}
