#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <glib/gstdio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "ppn-agent-cleanup.h"
#include "ppn-domain-manager-private.h"
#include "ppn-domain-manager.h"
#include "ppn-domain-xml.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-test-util.h"

#define N_PORTS 10

typedef struct {
	gchar *dir;
	PpnAgentConfig *config;
	PpnImage *image;
	PpnImage *disk_image;
	virConnect *keeper; /* test:///default state lives while a connection does */
	GMainLoop *loop;
	GAsyncResult *res;
} Fixture;

static void
test_virt_error_func (void *user_data, virErrorPtr err)
{
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GKeyFile) kf = g_key_file_new ();
	g_autofree gchar *conf = NULL;
	g_autofree gchar *backing = NULL;
	g_autofree gchar *image_dir = NULL;
	g_autofree gchar *image_conf = NULL;
	guint16 base = ppn_test_free_port_range (N_PORTS);
	const gchar *accel = data != NULL ? data : "tcg";

	fx->dir = g_dir_make_tmp ("ppn-manager-XXXXXX", &error);
	g_assert_no_error (error);
	conf = g_strdup_printf ("[agent]\nnode-id=node1\nfleet-url=https://127.0.0.1:9443\n"
				"libvirt-uri=test:///default\nstate-dir=%s/state\nimage-dir=%s/images\n"
				"port-range=%u-%u\naccel=%s\n",
				fx->dir, fx->dir, base, base + N_PORTS - 1, accel);
	g_assert_true (g_key_file_load_from_data (kf, conf, -1, G_KEY_FILE_NONE, NULL));
	fx->config = ppn_agent_config_new_from_keyfile (kf, NULL, &error);
	g_assert_no_error (error);

	fx->image = g_new0 (PpnImage, 1);
	fx->image->name = g_strdup ("test-guest");
	fx->image->description = g_strdup ("");
	fx->image->dir = g_strdup (fx->dir);
	fx->image->kernel = g_build_filename (fx->dir, "vmlinuz", NULL);
	fx->image->cmdline = g_strdup ("console=ttyS0");

	/* the disk image comes through the catalog's own checks */
	image_dir = g_build_filename (fx->dir, "images", "disk1", NULL);
	g_assert_cmpint (g_mkdir_with_parents (image_dir, 0755), ==, 0);
	backing = g_build_filename (image_dir, "disk.qcow2", NULL);
	image_conf = g_build_filename (image_dir, "image.conf", NULL);
	g_assert_true (g_file_set_contents (image_conf, "[image]\nname=disk1\ndisk=disk.qcow2\ndisk-format=qcow2\n", -1,
					    &error));
	{
		const gchar *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", backing, "16M", NULL};
		gint status = 0;
		g_assert_true (g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
					     NULL, &status, &error));
		g_assert_no_error (error);
		g_assert_true (g_spawn_check_wait_status (status, NULL));
	}
	fx->disk_image = ppn_image_load (image_dir, &error);
	g_assert_no_error (error);

	virSetErrorFunc (NULL, test_virt_error_func);
	fx->keeper = virConnectOpen ("test:///default");
	g_assert_nonnull (fx->keeper);
	fx->loop = g_main_loop_new (NULL, FALSE);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *cmd = g_strdup_printf ("rm -rf '%s'", fx->dir);
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains (fx->keeper, &doms, 0);

	/* nothing of ours may be left behind by any test */
	for (int i = 0; i < n; i++) {
		const gchar *name = virDomainGetName (doms[i]);
		if (g_str_has_prefix (name, PPN_DOMAIN_PREFIX)) {
			virDomainDestroy (doms[i]);
			g_error ("test left domain %s", name);
		}
		virDomainFree (doms[i]);
	}
	free (doms);
	virConnectClose (fx->keeper);
	g_assert_cmpint (system (cmd), ==, 0);
	g_main_loop_unref (fx->loop);
	ppn_image_free (fx->image);
	ppn_image_free (fx->disk_image);
	ppn_agent_config_free (fx->config);
	g_free (fx->dir);
}

static void
async_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	Fixture *fx = user_data;

	fx->res = g_object_ref (res);
	g_main_loop_quit (fx->loop);
}

static GAsyncResult *
wait_result (Fixture *fx)
{
	g_main_loop_run (fx->loop);
	return fx->res;
}

static PpnDomainManager *
start_manager (Fixture *fx)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainManager) manager = ppn_domain_manager_new (fx->config, &error);
	g_autoptr(GAsyncResult) res = NULL;

	g_assert_no_error (error);
	ppn_domain_manager_start_async (manager, NULL, async_cb, fx);
	res = wait_result (fx);
	g_assert_true (ppn_domain_manager_start_finish (manager, res, &error));
	g_assert_no_error (error);
	return g_steal_pointer (&manager);
}

static PpnDomainInfo *
create (Fixture *fx, PpnDomainManager *manager, const gchar *vm_id, const PpnImage *image, GError **error)
{
	g_autoptr(PpnDomainRequest) req = ppn_domain_request_new ();
	g_autoptr(GAsyncResult) res = NULL;

	req->vm_id = g_strdup (vm_id);
	req->tenant = g_strdup ("alice");
	req->name = g_strdup ("web1");
	req->image = g_strdup (image->name);
	g_ptr_array_add (req->forwards, ppn_forward_new (80, "tcp"));
	g_ptr_array_add (req->forwards, ppn_forward_new (53, "udp"));
	ppn_domain_manager_create_async (manager, req, image, NULL, async_cb, fx);
	res = wait_result (fx);
	return ppn_domain_manager_create_finish (manager, res, error);
}

static gboolean
destroy (Fixture *fx, PpnDomainManager *manager, const gchar *vm_id, GError **error)
{
	g_autoptr(GAsyncResult) res = NULL;

	ppn_domain_manager_destroy_async (manager, vm_id, NULL, async_cb, fx);
	res = wait_result (fx);
	return ppn_domain_manager_destroy_finish (manager, res, error);
}

static GPtrArray *
list (Fixture *fx, PpnDomainManager *manager)
{
	g_autoptr(GAsyncResult) res = NULL;
	g_autoptr(GError) error = NULL;
	GPtrArray *infos;

	ppn_domain_manager_list_async (manager, NULL, async_cb, fx);
	res = wait_result (fx);
	infos = ppn_domain_manager_list_finish (manager, res, &error);
	g_assert_no_error (error);
	return infos;
}

static PpnDomainInfo *
find (GPtrArray *infos, const gchar *vm_id)
{
	for (guint i = 0; i < infos->len; i++) {
		PpnDomainInfo *info = g_ptr_array_index (infos, i);
		if (g_strcmp0 (info->vm_id, vm_id) == 0)
			return info;
	}
	return NULL;
}

static void
test_lifecycle (Fixture *fx, gconstpointer data)
{
	g_autoptr(PpnDomainManager) manager = start_manager (fx);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainInfo) info = NULL;
	g_autoptr(GPtrArray) infos = NULL;
	g_autoptr(virDomain) dom = NULL;
	PpnDomainInfo *listed;
	PpnForward *a, *b;

	g_assert_cmpstr (ppn_domain_manager_get_accel (manager), ==, "tcg");
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS);
	info = create (fx, manager, "00000000000000a1", fx->image, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (info->domain, ==, "ppn-00000000000000a1");
	g_assert_cmpstr (info->state, ==, "running");
	g_assert_cmpuint (info->forwards->len, ==, 2);
	a = g_ptr_array_index (info->forwards, 0);
	b = g_ptr_array_index (info->forwards, 1);
	g_assert_cmpstr (a->host_address, ==, "127.0.0.1");
	g_assert_cmpuint (a->host_port, >=, fx->config->port_first);
	g_assert_cmpuint (a->host_port, <=, fx->config->port_last);
	g_assert_cmpuint (b->host_port, >=, fx->config->port_first);
	g_assert_cmpuint (b->host_port, <=, fx->config->port_last);
	g_assert_cmpuint (a->host_port, !=, b->host_port);
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS - 2);

	/* libvirt has it, running */
	dom = virDomainLookupByName (fx->keeper, "ppn-00000000000000a1");
	g_assert_nonnull (dom);
	g_assert_cmpint (virDomainIsActive (dom), ==, 1);

	/* the list reads vm id, tenant and ports back from the metadata */
	infos = list (fx, manager);
	listed = find (infos, "00000000000000a1");
	g_assert_nonnull (listed);
	g_assert_cmpstr (listed->tenant, ==, "alice");
	g_assert_cmpstr (listed->state, ==, "running");
	g_assert_cmpuint (listed->forwards->len, ==, 2);
	g_assert_cmpuint (((PpnForward *)g_ptr_array_index (listed->forwards, 0))->host_port, ==, a->host_port);
	/* the test driver's own domain is not ours */
	for (guint i = 0; i < infos->len; i++)
		g_assert_true (g_str_has_prefix (((PpnDomainInfo *)g_ptr_array_index (infos, i))->domain, "ppn-"));
	g_clear_pointer (&infos, g_ptr_array_unref);

	g_assert_true (destroy (fx, manager, "00000000000000a1", &error));
	g_assert_no_error (error);
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS);
	infos = list (fx, manager);
	g_assert_null (find (infos, "00000000000000a1"));

	/* gone is gone */
	g_assert_false (destroy (fx, manager, "00000000000000a1", &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND);
	g_clear_error (&error);
	/* and a bad id never reaches libvirt */
	g_assert_false (destroy (fx, manager, "../../etc", &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
}

static void
test_conflict (Fixture *fx, gconstpointer data)
{
	g_autoptr(PpnDomainManager) manager = start_manager (fx);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainInfo) info = NULL;
	g_autoptr(PpnDomainInfo) again = NULL;
	g_autoptr(GPtrArray) infos = NULL;
	g_autofree gchar *console = g_build_filename (fx->config->state_dir, "console", "ppn-00000000000000b2.log", NULL);
	guint n = 0;

	info = create (fx, manager, "00000000000000b2", fx->image, &error);
	g_assert_no_error (error);
	g_assert_true (g_file_set_contents (console, "boot log", -1, NULL));
	again = create (fx, manager, "00000000000000b2", fx->image, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_CONFLICT);
	g_assert_null (again);
	g_clear_error (&error);
	/* nothing leaked: no ports, no second domain, the first one's files kept */
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS - 2);
	g_assert_true (g_file_test (console, G_FILE_TEST_EXISTS));
	infos = list (fx, manager);
	for (guint i = 0; i < infos->len; i++)
		n += g_str_has_prefix (((PpnDomainInfo *)g_ptr_array_index (infos, i))->domain, "ppn-") ? 1 : 0;
	g_assert_cmpuint (n, ==, 1);
	g_assert_true (destroy (fx, manager, "00000000000000b2", &error));
	g_assert_false (g_file_test (console, G_FILE_TEST_EXISTS));
}

/* an agent restart: a new manager finds the live domain and its ports */
static void
test_restart (Fixture *fx, gconstpointer data)
{
	g_autoptr(PpnDomainManager) first = start_manager (fx);
	g_autoptr(PpnDomainManager) second = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainInfo) info = NULL;
	g_autoptr(PpnDomainInfo) other = NULL;
	g_autoptr(GHashTable) used = g_hash_table_new (NULL, NULL);

	info = create (fx, first, "00000000000000c3", fx->image, &error);
	g_assert_no_error (error);
	g_clear_object (&first);

	second = start_manager (fx);
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (second), ==, N_PORTS - 2);
	for (guint i = 0; i < info->forwards->len; i++)
		g_hash_table_add (used, GUINT_TO_POINTER ((guint)((PpnForward *)g_ptr_array_index (info->forwards, i))->host_port));
	/* every port the new manager hands out is one the live VM does not hold */
	other = create (fx, second, "00000000000000c4", fx->image, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < other->forwards->len; i++) {
		guint port = ((PpnForward *)g_ptr_array_index (other->forwards, i))->host_port;
		g_assert_false (g_hash_table_contains (used, GUINT_TO_POINTER (port)));
	}
	g_assert_true (destroy (fx, second, "00000000000000c3", &error));
	g_assert_true (destroy (fx, second, "00000000000000c4", &error));
	g_assert_no_error (error);
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (second), ==, N_PORTS);
}

/* a disk image gets a per-VM overlay, removed with the domain; the
 * overlay's one backing file is the catalog image, its format pinned to
 * qcow2 so QEMU never probes it */
static void
test_disk_overlay (Fixture *fx, gconstpointer data)
{
	g_autoptr(PpnDomainManager) manager = start_manager (fx);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainInfo) info = NULL;
	g_autofree gchar *overlay = g_build_filename (fx->config->state_dir, "disks", "ppn-00000000000000d5.qcow2", NULL);
	g_autofree gchar *out = NULL;
	g_autofree gchar *dumped = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(virDomain) dom = NULL;
	const gchar *argv[] = {"qemu-img", "info", "--output=json", "--backing-chain", overlay, NULL};
	JsonArray *chain;
	JsonObject *obj;
	gint status = 0;

	info = create (fx, manager, "00000000000000d5", fx->disk_image, &error);
	g_assert_no_error (error);
	g_assert_true (g_file_test (overlay, G_FILE_TEST_IS_REGULAR));
	g_assert_true (g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, NULL, &status,
				     &error));
	g_assert_no_error (error);
	g_assert_true (g_spawn_check_wait_status (status, NULL));
	g_assert_true (json_parser_load_from_data (parser, out, -1, &error));
	g_assert_no_error (error);
	/* the overlay and the catalog image, which stands alone */
	chain = json_node_get_array (json_parser_get_root (parser));
	g_assert_cmpuint (json_array_get_length (chain), ==, 2);
	obj = json_array_get_object_element (chain, 1);
	g_assert_cmpstr (json_object_get_string_member (obj, "filename"), ==, fx->disk_image->disk);
	g_assert_cmpstr (json_object_get_string_member (obj, "format"), ==, "qcow2");
	g_assert_false (json_object_has_member (obj, "backing-filename"));
	obj = json_array_get_object_element (chain, 0);
	g_assert_cmpstr (json_object_get_string_member (obj, "filename"), ==, overlay);
	g_assert_cmpstr (json_object_get_string_member (obj, "format"), ==, "qcow2");
	g_assert_cmpstr (json_object_get_string_member (obj, "backing-filename"), ==, fx->disk_image->disk);
	g_assert_cmpstr (json_object_get_string_member (obj, "full-backing-filename"), ==, fx->disk_image->disk);
	g_assert_cmpstr (json_object_get_string_member_with_default (obj, "backing-filename-format", "(none)"), ==,
			 "qcow2");
	g_assert_false (json_object_has_member (json_object_get_object_member (
							json_object_get_object_member (obj, "format-specific"), "data"),
						"data-file"));
	/* and the domain reads the overlay as qcow2, never probed */
	dom = virDomainLookupByName (fx->keeper, "ppn-00000000000000d5");
	g_assert_nonnull (dom);
	dumped = virDomainGetXMLDesc (dom, 0);
	g_assert_nonnull (strstr (dumped, "<driver name='qemu' type='qcow2'/>"));
	g_assert_true (destroy (fx, manager, "00000000000000d5", &error));
	g_assert_false (g_file_test (overlay, G_FILE_TEST_EXISTS));
}

/* a domain that vanished behind the agent's back gives its ports back;
 * one with bad metadata is not reported */
static void
test_reconcile (Fixture *fx, gconstpointer data)
{
	g_autoptr(PpnDomainManager) manager = start_manager (fx);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainInfo) info = NULL;
	g_autoptr(GPtrArray) infos = NULL;
	g_autoptr(virDomain) dom = NULL;
	g_autoptr(virDomain) bad = NULL;
	const gchar *bad_xml =
		"<domain type='test'><name>ppn-00000000000000ff</name><memory>65536</memory>"
		"<metadata><ppn:vm xmlns:ppn='https://ppn.dev/xmlns/vm/1'><ppn:id>00000000000000ff</ppn:id>"
		"<ppn:tenant>a&lt;b</ppn:tenant><ppn:name>x</ppn:name><ppn:image>i</ppn:image></ppn:vm></metadata>"
		"<os><type>hvm</type></os></domain>";

	info = create (fx, manager, "00000000000000e6", fx->image, &error);
	g_assert_no_error (error);
	dom = virDomainLookupByName (fx->keeper, "ppn-00000000000000e6");
	g_assert_cmpint (virDomainDestroy (dom), ==, 0);

	bad = virDomainCreateXML (fx->keeper, bad_xml, 0);
	g_assert_nonnull (bad);
	g_test_expect_message ("ppn-agent", G_LOG_LEVEL_WARNING, "Ignoring domain ppn-00000000000000ff*");
	infos = list (fx, manager);
	g_test_assert_expected_messages ();
	g_assert_null (find (infos, "00000000000000e6"));
	g_assert_null (find (infos, "00000000000000ff"));
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS);
	g_assert_cmpint (virDomainDestroy (bad), ==, 0);
}

/* two agents on one libvirt (as in tests): each sees only its own */
static void
test_other_node (Fixture *fx, gconstpointer data)
{
	g_autoptr(PpnDomainManager) mine = start_manager (fx);
	g_autoptr(PpnDomainManager) theirs = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainInfo) info = NULL;
	g_autoptr(GPtrArray) infos = NULL;

	info = create (fx, mine, "00000000000000f7", fx->image, &error);
	g_assert_no_error (error);
	g_free (fx->config->node_id);
	fx->config->node_id = g_strdup ("node2");
	theirs = start_manager (fx);
	infos = list (fx, theirs);
	g_assert_null (find (infos, "00000000000000f7"));
	g_assert_false (destroy (fx, theirs, "00000000000000f7", &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND);
	g_clear_error (&error);
	g_assert_true (destroy (fx, mine, "00000000000000f7", &error));
	g_assert_no_error (error);
}

static void
test_auto_accel (Fixture *fx, gconstpointer data)
{
	g_autoptr(PpnDomainManager) manager = start_manager (fx);

	/* the test driver offers no kvm virt type */
	g_assert_cmpstr (ppn_domain_manager_get_accel (manager), ==, "tcg");
}

/* unset, the capacity is the host's as libvirt's node info counts it
 * (the test driver's: 16 CPUs, 3 GiB); configured, it is the config's */
static void
test_capacity (Fixture *fx, gconstpointer data)
{
	guint vcpus = 0, memory_mib = 0;

	{
		g_autoptr(PpnDomainManager) manager = ppn_domain_manager_new (fx->config, NULL);
		ppn_domain_manager_get_capacity (manager, &vcpus, &memory_mib);
		g_assert_cmpuint (vcpus, ==, 0); /* not known before it connects */
	}
	{
		g_autoptr(PpnDomainManager) manager = start_manager (fx);
		ppn_domain_manager_get_capacity (manager, &vcpus, &memory_mib);
		g_assert_cmpuint (vcpus, ==, 16);
		g_assert_cmpuint (memory_mib, ==, 3072);
	}
	fx->config->capacity_vcpus = 5;
	{
		g_autoptr(PpnDomainManager) manager = start_manager (fx);
		ppn_domain_manager_get_capacity (manager, &vcpus, &memory_mib);
		g_assert_cmpuint (vcpus, ==, 5);
		g_assert_cmpuint (memory_mib, ==, 3072);
	}
}

static void
test_unreachable (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainManager) manager = NULL;
	g_autoptr(GAsyncResult) res = NULL;

	g_free (fx->config->libvirt_uri);
	fx->config->libvirt_uri = g_strdup ("test:///nonexistent/file.xml");
	manager = ppn_domain_manager_new (fx->config, &error);
	g_assert_no_error (error);
	g_test_expect_message ("ppn-agent", G_LOG_LEVEL_WARNING,
			       "libvirt at test:///nonexistent/file.xml is unreachable: *; degraded");
	ppn_domain_manager_start_async (manager, NULL, async_cb, fx);
	res = wait_result (fx);
	g_assert_false (ppn_domain_manager_start_finish (manager, res, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE);
	g_test_assert_expected_messages ();
	g_assert_true (ppn_domain_manager_is_degraded (manager));
}

#define DOWN_URI "test:///nonexistent/file.xml"

/* libvirtd goes away with a VM running: creates and destroys fail at once
 * with unavailable and leave nothing (no port, no overlay, no domain);
 * nobody connects again before the backoff says so; once libvirt is back
 * the VM is there, untouched, with its ports, and a new create gets others */
static void
test_outage (Fixture *fx, gconstpointer data)
{
	g_autoptr(PpnDomainManager) manager = start_manager (fx);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainInfo) first = NULL;
	g_autoptr(PpnDomainInfo) second = NULL;
	g_autoptr(GPtrArray) infos = NULL;
	g_autoptr(GAsyncResult) res = NULL;
	g_autoptr(virDomain) dom = NULL;
	g_autoptr(GHashTable) used = g_hash_table_new (NULL, NULL);
	g_autofree gchar *overlay = g_build_filename (fx->config->state_dir, "disks", "ppn-0000000000000a02.qcow2", NULL);
	PpnDomainInfo *listed;
	unsigned int id_before;
	gint64 start, deadline;

	first = create (fx, manager, "0000000000000a01", fx->disk_image, &error);
	g_assert_no_error (error);
	dom = virDomainLookupByName (fx->keeper, "ppn-0000000000000a01");
	id_before = virDomainGetID (dom);
	g_assert_false (ppn_domain_manager_is_degraded (manager));

	/* down: logged once, however many calls fail */
	g_test_expect_message ("ppn-agent", G_LOG_LEVEL_WARNING, "libvirt at " DOWN_URI " is unreachable: *; degraded");
	ppn_domain_manager_lose_connection (manager, DOWN_URI);
	second = create (fx, manager, "0000000000000a02", fx->disk_image, &error);
	g_assert_null (second);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE);
	g_clear_error (&error);
	g_test_assert_expected_messages ();
	g_assert_true (ppn_domain_manager_is_degraded (manager));
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS - 2);
	g_assert_false (g_file_test (overlay, G_FILE_TEST_EXISTS));

	/* within the backoff nothing even tries: it answers at once */
	start = g_get_monotonic_time ();
	second = create (fx, manager, "0000000000000a02", fx->disk_image, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE);
	g_assert_nonnull (strstr (error->message, "next attempt in"));
	g_clear_error (&error);
	g_assert_false (destroy (fx, manager, "0000000000000a01", &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE);
	g_clear_error (&error);
	ppn_domain_manager_list_async (manager, NULL, async_cb, fx);
	res = wait_result (fx);
	g_assert_null (ppn_domain_manager_list_finish (manager, res, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE);
	g_clear_error (&error);
	g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC / 2);
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS - 2);
	g_assert_false (g_file_test (overlay, G_FILE_TEST_EXISTS));
	/* the running VM was not touched */
	g_assert_cmpint (virDomainIsActive (dom), ==, 1);

	/* back: the first attempt after the backoff (1 s) connects */
	ppn_domain_manager_lose_connection (manager, "test:///default");
	deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
	while (second == NULL && g_get_monotonic_time () < deadline) {
		second = create (fx, manager, "0000000000000a02", fx->disk_image, &error);
		if (second == NULL) {
			g_assert_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE);
			g_clear_error (&error);
			g_usleep (G_USEC_PER_SEC / 10);
		}
	}
	g_assert_nonnull (second);
	g_assert_cmpint (g_get_monotonic_time () - start, >=, G_USEC_PER_SEC / 2);
	g_assert_false (ppn_domain_manager_is_degraded (manager));
	for (guint i = 0; i < first->forwards->len; i++)
		g_hash_table_add (used, GUINT_TO_POINTER ((guint)((PpnForward *)g_ptr_array_index (first->forwards, i))->host_port));
	for (guint i = 0; i < second->forwards->len; i++) {
		guint port = ((PpnForward *)g_ptr_array_index (second->forwards, i))->host_port;
		g_assert_false (g_hash_table_contains (used, GUINT_TO_POINTER (port)));
	}

	/* the same domain, not a new one, with what adoption needs */
	infos = list (fx, manager);
	listed = find (infos, "0000000000000a01");
	g_assert_nonnull (listed);
	g_assert_cmpuint (virDomainGetID (dom), ==, id_before);
	g_assert_cmpstr (listed->tenant, ==, "alice");
	g_assert_cmpstr (listed->name, ==, "web1");
	g_assert_cmpstr (listed->image, ==, "disk1");
	g_assert_cmpuint (listed->vcpus, ==, 1);
	g_assert_cmpuint (listed->memory_mib, ==, 256);
	g_assert_cmpuint (((PpnForward *)g_ptr_array_index (listed->forwards, 0))->host_port, ==,
			  ((PpnForward *)g_ptr_array_index (first->forwards, 0))->host_port);
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS - 4);

	g_assert_true (destroy (fx, manager, "0000000000000a01", &error));
	g_assert_true (destroy (fx, manager, "0000000000000a02", &error));
	g_assert_no_error (error);
	g_assert_cmpuint (ppn_domain_manager_count_free_ports (manager), ==, N_PORTS);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
#define ADD(path, func, data) g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)
	ADD ("/agent/manager/lifecycle", test_lifecycle, NULL);
	ADD ("/agent/manager/conflict", test_conflict, NULL);
	ADD ("/agent/manager/restart", test_restart, NULL);
	ADD ("/agent/manager/disk-overlay", test_disk_overlay, NULL);
	ADD ("/agent/manager/reconcile", test_reconcile, NULL);
	ADD ("/agent/manager/other-node", test_other_node, NULL);
	ADD ("/agent/manager/auto-accel", test_auto_accel, "auto");
	ADD ("/agent/manager/capacity", test_capacity, NULL);
	ADD ("/agent/manager/unreachable", test_unreachable, NULL);
	ADD ("/agent/manager/outage", test_outage, NULL);
#undef ADD
	return g_test_run ();
}
