#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <glib/gstdio.h>
#include <string.h>

#include "ppn-agent-config.h"
#include "ppn-error.h"

#define MINIMAL "[agent]\nnode-id=node1\nfleet-url=https://127.0.0.1:9443\n"

static PpnAgentConfig *
load (const gchar *text, const gchar *path, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new ();

	g_assert_true (g_key_file_load_from_data (kf, text, -1, G_KEY_FILE_NONE, NULL));
	return ppn_agent_config_new_from_keyfile (kf, path, error);
}

static void
test_defaults (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnAgentConfig) config = load (MINIMAL, "/etc/ppn/agentd.conf", &error);
	g_autofree gchar *url = NULL;

	g_assert_no_error (error);
	g_assert_cmpstr (config->node_id, ==, "node1");
	g_assert_cmpstr (config->listen, ==, "127.0.0.1:9444");
	g_assert_cmpstr (config->listen_host, ==, "127.0.0.1");
	g_assert_cmpuint (config->listen_port, ==, 9444);
	g_assert_null (config->advertise_url);
	g_assert_cmpstr (config->fleet_url, ==, "https://127.0.0.1:9443");
	g_assert_cmpstr (config->libvirt_uri, ==, "qemu:///system");
	g_assert_cmpstr (config->state_dir, ==, PPN_LOCALSTATEDIR "/agent");
	g_assert_cmpstr (config->image_dir, ==, PPN_LOCALSTATEDIR "/images");
	g_assert_cmpuint (config->port_first, ==, 20000);
	g_assert_cmpuint (config->port_last, ==, 20999);
	g_assert_cmpstr (config->forward_address, ==, "127.0.0.1");
	g_assert_cmpint (config->accel, ==, PPN_ACCEL_AUTO);
	g_assert_cmpint (config->egress, ==, PPN_EGRESS_NAT);
	g_assert_cmpuint (config->heartbeat_interval, ==, 5);
	/* unset: the host's, as libvirt counts them once connected */
	g_assert_cmpuint (config->capacity_vcpus, ==, 0);
	g_assert_cmpuint (config->capacity_memory_mib, ==, 0);
	g_assert_cmpuint (config->max_forwards, ==, 8);
	url = ppn_agent_config_get_advertise_url (config, 41234);
	g_assert_cmpstr (url, ==, "https://127.0.0.1:41234");
}

static void
test_values (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnAgentConfig) config = NULL;
	g_autofree gchar *url = NULL;

	config = load ("[agent]\nnode-id=n-2\nfleet-url=https://fleet.example:9443/\nlisten=127.0.0.1:0\n"
		       "advertise-url=https://10.0.0.5:9444\nlibvirt-uri=test:///default\n"
		       "state-dir=state\nimage-dir=/srv/images\nport-range=30000-30009\n"
		       "forward-address=0.0.0.0\naccel=tcg\negress=none\nheartbeat-interval=2\ncapacity-vcpus=4\n"
		       "capacity-memory-mib=2048\nmax-forwards=2\n"
		       "[tls]\nca=certs/ca.pem\ncert=/abs/agent.pem\nkey=agent-key.pem\n",
		       "/etc/ppn/agentd.conf", &error);
	g_assert_no_error (error);
	g_assert_cmpuint (config->listen_port, ==, 0);
	g_assert_cmpstr (config->fleet_url, ==, "https://fleet.example:9443");
	/* relative paths resolve against the config file's folder */
	g_assert_cmpstr (config->state_dir, ==, "/etc/ppn/state");
	g_assert_cmpstr (config->image_dir, ==, "/srv/images");
	g_assert_cmpstr (config->tls_ca, ==, "/etc/ppn/certs/ca.pem");
	g_assert_cmpstr (config->tls_cert, ==, "/abs/agent.pem");
	g_assert_cmpstr (config->tls_key, ==, "/etc/ppn/agent-key.pem");
	g_assert_cmpuint (config->port_first, ==, 30000);
	g_assert_cmpuint (config->port_last, ==, 30009);
	g_assert_cmpstr (config->forward_address, ==, "0.0.0.0");
	g_assert_cmpint (config->accel, ==, PPN_ACCEL_TCG);
	g_assert_cmpint (config->egress, ==, PPN_EGRESS_NONE);
	g_assert_cmpuint (config->heartbeat_interval, ==, 2);
	g_assert_cmpuint (config->capacity_vcpus, ==, 4);
	g_assert_cmpuint (config->capacity_memory_mib, ==, 2048);
	g_assert_cmpuint (config->max_forwards, ==, 2);
	url = ppn_agent_config_get_advertise_url (config, 1234);
	g_assert_cmpstr (url, ==, "https://10.0.0.5:9444");
}

/* max-vcpus and max-memory-mib are the capacity keys' older names */
static void
test_capacity_old_names (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnAgentConfig) config = NULL;

	config = load ("[agent]\nnode-id=n-3\nfleet-url=https://fleet.example:9443\nmax-vcpus=6\n"
		       "max-memory-mib=1024\n",
		       NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (config->capacity_vcpus, ==, 6);
	g_assert_cmpuint (config->capacity_memory_mib, ==, 1024);
	g_clear_pointer (&config, ppn_agent_config_free);

	config = load ("[agent]\nnode-id=n-3\nfleet-url=https://fleet.example:9443\nmax-vcpus=6\n"
		       "capacity-vcpus=8\n",
		       NULL, &error);
	g_assert_null (config);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "capacity-vcpus"));
	g_assert_nonnull (strstr (error->message, "max-vcpus"));
}

static void
test_load_file (void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp ("ppn-agent-config-XXXXXX", &error);
	g_autofree gchar *path = g_build_filename (dir, "agentd.conf", NULL);
	g_autofree gchar *expected = g_build_filename (dir, "ca.pem", NULL);
	g_autoptr(PpnAgentConfig) config = NULL;

	g_assert_true (g_file_set_contents (path, MINIMAL "[tls]\nca=ca.pem\n", -1, &error));
	config = ppn_agent_config_load (path, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (config->tls_ca, ==, expected);
	g_unlink (path);
	g_rmdir (dir);

	g_clear_pointer (&config, ppn_agent_config_free);
	config = ppn_agent_config_load ("/nonexistent/agentd.conf", &error);
	g_assert_null (config);
	g_assert_nonnull (error);
}

static void
test_refused (void)
{
	const gchar *bad[] = {
		/* unknown keys and groups */
		MINIMAL "heartbeat-intervall=5\n",
		MINIMAL "[fleet]\nnode-id=x\n",
		MINIMAL "[tls]\ncacert=x\n",
		/* required keys */
		"[agent]\nfleet-url=https://127.0.0.1:9443\n",
		"[agent]\nnode-id=node1\n",
		"[agent]\nnode-id=node 1\nfleet-url=https://127.0.0.1:9443\n",
		"[agent]\nnode-id=a</name>\nfleet-url=https://127.0.0.1:9443\n",
		"[agent]\nnode-id=node1\nfleet-url=http://127.0.0.1:9443\n",
		/* port ranges */
		MINIMAL "port-range=20999-20000\n",
		MINIMAL "port-range=0-10\n",
		MINIMAL "port-range=20000\n",
		MINIMAL "port-range=20000-70000\n",
		MINIMAL "port-range=a-b\n",
		/* addresses: numeric IPv4 only, for forwards */
		MINIMAL "forward-address=localhost\n",
		MINIMAL "forward-address=::1\n",
		MINIMAL "forward-address=127.0.0.1,smb=/\n",
		MINIMAL "listen=localhost:9444\n",
		MINIMAL "listen=127.0.0.1\n",
		MINIMAL "listen=127.0.0.1:99999\n",
		/* accel */
		MINIMAL "accel=xen\n",
		MINIMAL "accel=KVM\n",
		/* egress: exactly nat or none */
		MINIMAL "egress=NONE\n",
		MINIMAL "egress=restricted\n",
		MINIMAL "egress=none,nat\n",
		/* numbers */
		MINIMAL "heartbeat-interval=0\n",
		MINIMAL "max-vcpus=-1\n",
		MINIMAL "capacity-vcpus=0\n",
		MINIMAL "capacity-memory-mib=63\n",
		MINIMAL "max-forwards=1000\n",
		MINIMAL "state-dir=\n" "image-dir=relative\n",
		NULL,
	};

	for (guint i = 0; bad[i] != NULL; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnAgentConfig) config = load (bad[i], NULL, &error);

		if (config != NULL)
			g_error ("configuration %u was accepted:\n%s", i, bad[i]);
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
		g_test_message ("refused: %s", error->message);
	}
}

static void
test_egress (void)
{
	PpnEgress egress = PPN_EGRESS_NONE;

	g_assert_true (ppn_egress_from_string ("nat", &egress));
	g_assert_cmpint (egress, ==, PPN_EGRESS_NAT);
	g_assert_cmpstr (ppn_egress_to_string (egress), ==, "nat");
	g_assert_true (ppn_egress_from_string ("none", &egress));
	g_assert_cmpint (egress, ==, PPN_EGRESS_NONE);
	g_assert_cmpstr (ppn_egress_to_string (egress), ==, "none");
	g_assert_false (ppn_egress_from_string (NULL, &egress));
	g_assert_false (ppn_egress_from_string ("None", &egress));
	g_assert_cmpint (egress, ==, PPN_EGRESS_NONE);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/agent/config/defaults", test_defaults);
	g_test_add_func ("/agent/config/values", test_values);
	g_test_add_func ("/agent/config/capacity-old-names", test_capacity_old_names);
	g_test_add_func ("/agent/config/load-file", test_load_file);
	g_test_add_func ("/agent/config/refused", test_refused);
	g_test_add_func ("/agent/config/egress", test_egress);
	return g_test_run ();
}
