#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include <gio/gio.h>
#include <string.h>

#include "ppn-agent-config.h"
#include "ppn-config.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"

static const gchar *const ppn_agent_config_groups[] = {"agent", "tls", NULL};
static const gchar *const ppn_agent_config_agent_keys[] = {
	"node-id", "listen", "advertise-url", "fleet-url", "libvirt-uri",
	"state-dir", "image-dir", "port-range", "forward-address", "accel",
	"egress", "heartbeat-interval", "capacity-vcpus", "capacity-memory-mib",
	"max-vcpus", "max-memory-mib", "max-forwards", NULL};
static const gchar *const ppn_agent_config_tls_keys[] = {"ca", "cert", "key", NULL};
static const gchar *const *const ppn_agent_config_keys[] = {
	ppn_agent_config_agent_keys,
	ppn_agent_config_tls_keys,
	NULL};

const gchar *
ppn_accel_to_string (PpnAccel accel)
{
	switch (accel) {
	case PPN_ACCEL_KVM:
		return "kvm";
	case PPN_ACCEL_TCG:
		return "tcg";
	case PPN_ACCEL_AUTO:
	default:
		return "auto";
	}
}

gboolean
ppn_accel_from_string (const gchar *str, PpnAccel *accel)
{
	g_return_val_if_fail (accel != NULL, FALSE);
	if (g_strcmp0 (str, "auto") == 0)
		*accel = PPN_ACCEL_AUTO;
	else if (g_strcmp0 (str, "kvm") == 0)
		*accel = PPN_ACCEL_KVM;
	else if (g_strcmp0 (str, "tcg") == 0)
		*accel = PPN_ACCEL_TCG;
	else
		return FALSE;
	return TRUE;
}

const gchar *
ppn_egress_to_string (PpnEgress egress)
{
	switch (egress) {
	case PPN_EGRESS_NONE:
		return "none";
	case PPN_EGRESS_NAT:
	default:
		return "nat";
	}
}

gboolean
ppn_egress_from_string (const gchar *str, PpnEgress *egress)
{
	g_return_val_if_fail (egress != NULL, FALSE);
	if (g_strcmp0 (str, "nat") == 0)
		*egress = PPN_EGRESS_NAT;
	else if (g_strcmp0 (str, "none") == 0)
		*egress = PPN_EGRESS_NONE;
	else
		return FALSE;
	return TRUE;
}

void
ppn_agent_config_free (PpnAgentConfig *config)
{
	if (config == NULL)
		return;
	g_free (config->path);
	g_free (config->node_id);
	g_free (config->listen);
	g_free (config->listen_host);
	g_free (config->advertise_url);
	g_free (config->fleet_url);
	g_free (config->libvirt_uri);
	g_free (config->state_dir);
	g_free (config->image_dir);
	g_free (config->forward_address);
	g_free (config->tls_ca);
	g_free (config->tls_cert);
	g_free (config->tls_key);
	g_free (config);
}

/* What the node offers in total. Unset, it is what libvirt counts on the
 * host, read when the agent connects (never here: this may run on the
 * main loop). max-vcpus and max-memory-mib are the keys' older names. */
static gboolean
ppn_agent_config_get_capacity (GKeyFile *kf,
			       const gchar *where,
			       const gchar *key,
			       const gchar *old_key,
			       guint64 min,
			       guint64 max,
			       guint *out,
			       GError **error)
{
	gboolean has_new = g_key_file_has_key (kf, "agent", key, NULL);
	gboolean has_old = g_key_file_has_key (kf, "agent", old_key, NULL);
	guint64 v = 0;

	if (has_new && has_old) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] %s and %s (its older name) are both set; keep %s"), where, key,
			     old_key, key);
		return FALSE;
	}
	if (has_old)
		g_message (_("%s: [agent] %s is an older name of %s"), where, old_key, key);
	if (!ppn_config_get_uint (kf, "agent", has_old ? old_key : key, 0, min, max, &v, error))
		return FALSE;
	*out = (guint)v;
	return TRUE;
}

static gboolean
ppn_agent_config_check_url (const gchar *key, const gchar *url, GError **error)
{
	g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);

	if (uri == NULL || g_strcmp0 (g_uri_get_scheme (uri), "https") != 0 ||
	    g_uri_get_host (uri) == NULL || g_uri_get_host (uri)[0] == '\0') {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("[agent] %s: '%s' is not an https:// URL"), key, url);
		return FALSE;
	}
	return TRUE;
}

PpnAgentConfig *
ppn_agent_config_new_from_keyfile (GKeyFile *kf, const gchar *path, GError **error)
{
	g_autoptr(PpnAgentConfig) config = g_new0 (PpnAgentConfig, 1);
	g_autofree gchar *port_range = NULL;
	g_autofree gchar *accel = NULL;
	g_autofree gchar *egress = NULL;
	g_autoptr(GInetAddress) fwd_addr = NULL;
	g_autoptr(GInetAddress) listen_addr = NULL;
	g_autoptr(GError) local = NULL;
	guint64 v = 0;
	const gchar *where = path != NULL ? path : "(config)";

	g_return_val_if_fail (kf != NULL, NULL);

	if (!ppn_config_check_keys (kf, where, ppn_agent_config_groups, ppn_agent_config_keys, error))
		return NULL;
	config->path = g_strdup (path);

	config->node_id = ppn_config_get_string (kf, "agent", "node-id", NULL);
	if (config->node_id == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] node-id is required"), where);
		return NULL;
	}
	if (!ppn_name_validate ("node-id", config->node_id, &local)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] node-id: %s"), where, local->message);
		return NULL;
	}

	config->listen = ppn_config_get_string (kf, "agent", "listen", PPN_AGENT_LISTEN_DEFAULT);
	if (!ppn_config_parse_address (config->listen, &config->listen_host, &config->listen_port, error)) {
		g_prefix_error (error, _("%s: [agent] listen: "), where);
		return NULL;
	}
	listen_addr = g_inet_address_new_from_string (config->listen_host);
	if (listen_addr == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] listen: '%s' is not a numeric IP address"),
			     where, config->listen_host);
		return NULL;
	}

	config->advertise_url = ppn_config_get_string (kf, "agent", "advertise-url", NULL);
	if (config->advertise_url != NULL &&
	    !ppn_agent_config_check_url ("advertise-url", config->advertise_url, error))
		return NULL;

	config->fleet_url = ppn_config_get_string (kf, "agent", "fleet-url", NULL);
	if (config->fleet_url == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] fleet-url is required"), where);
		return NULL;
	}
	if (!ppn_agent_config_check_url ("fleet-url", config->fleet_url, error))
		return NULL;
	/* the heartbeat path is appended to it */
	while (g_str_has_suffix (config->fleet_url, "/"))
		config->fleet_url[strlen (config->fleet_url) - 1] = '\0';

	config->libvirt_uri = ppn_config_get_string (kf, "agent", "libvirt-uri", PPN_AGENT_LIBVIRT_URI_DEFAULT);
	config->state_dir = ppn_config_get_path (kf, path, "agent", "state-dir", PPN_LOCALSTATEDIR "/agent");
	config->image_dir = ppn_config_get_path (kf, path, "agent", "image-dir", PPN_LOCALSTATEDIR "/images");
	if (!g_path_is_absolute (config->state_dir) || !g_path_is_absolute (config->image_dir)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] state-dir and image-dir must be absolute paths"), where);
		return NULL;
	}

	port_range = ppn_config_get_string (kf, "agent", "port-range", "20000-20999");
	if (!ppn_config_parse_port_range (port_range, &config->port_first, &config->port_last, error)) {
		g_prefix_error (error, _("%s: [agent] port-range: "), where);
		return NULL;
	}

	/* QEMU's hostfwd takes an IPv4 address; an empty one would mean every
	 * interface, so the address is always written out */
	config->forward_address = ppn_config_get_string (kf, "agent", "forward-address", "127.0.0.1");
	fwd_addr = g_inet_address_new_from_string (config->forward_address);
	if (fwd_addr == NULL || g_inet_address_get_family (fwd_addr) != G_SOCKET_FAMILY_IPV4) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] forward-address: '%s' is not a numeric IPv4 address"),
			     where, config->forward_address);
		return NULL;
	}
	if (g_inet_address_get_is_any (fwd_addr))
		g_message (_("forward-address is %s: port forwards listen on every interface"),
			   config->forward_address);

	accel = ppn_config_get_string (kf, "agent", "accel", "auto");
	if (!ppn_accel_from_string (accel, &config->accel)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] accel: expected auto, kvm or tcg, got '%s'"), where, accel);
		return NULL;
	}

	/* none here overrides whatever a create asks for */
	egress = ppn_config_get_string (kf, "agent", "egress", "nat");
	if (!ppn_egress_from_string (egress, &config->egress)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [agent] egress: expected nat or none, got '%s'"), where, egress);
		return NULL;
	}

	if (!ppn_config_get_uint (kf, "agent", "heartbeat-interval", 5, 1, 3600, &v, error))
		return NULL;
	config->heartbeat_interval = (guint)v;
	if (!ppn_agent_config_get_capacity (kf, where, "capacity-vcpus", "max-vcpus", 1, 4096, &config->capacity_vcpus,
					    error) ||
	    !ppn_agent_config_get_capacity (kf, where, "capacity-memory-mib", "max-memory-mib", 64, G_MAXINT32,
					    &config->capacity_memory_mib, error))
		return NULL;
	if (!ppn_config_get_uint (kf, "agent", "max-forwards", PPN_MAX_FORWARDS_DEFAULT, 0, 64, &v, error))
		return NULL;
	config->max_forwards = (guint)v;

	config->tls_ca = ppn_config_get_path (kf, path, "tls", "ca", PPN_SYSCONFDIR "/ca.pem");
	config->tls_cert = ppn_config_get_path (kf, path, "tls", "cert", PPN_SYSCONFDIR "/agent.pem");
	config->tls_key = ppn_config_get_path (kf, path, "tls", "key", PPN_SYSCONFDIR "/agent-key.pem");

	return g_steal_pointer (&config);
}

PpnAgentConfig *
ppn_agent_config_load (const gchar *path, GError **error)
{
	g_autoptr(GKeyFile) kf = NULL;
	g_autofree gchar *abs_path = NULL;

	g_return_val_if_fail (path != NULL, NULL);
	abs_path = g_canonicalize_filename (path, NULL);
	kf = ppn_config_load (abs_path, error);
	if (kf == NULL)
		return NULL;
	return ppn_agent_config_new_from_keyfile (kf, abs_path, error);
}

/* https://HOST:PORT of the bound listener, unless advertise-url says otherwise */
gchar *
ppn_agent_config_get_advertise_url (const PpnAgentConfig *config, guint16 bound_port)
{
	g_return_val_if_fail (config != NULL, NULL);
	if (config->advertise_url != NULL)
		return g_strdup (config->advertise_url);
	if (strchr (config->listen_host, ':') != NULL)
		return g_strdup_printf ("https://[%s]:%u", config->listen_host, bound_port);
	return g_strdup_printf ("https://%s:%u", config->listen_host, bound_port);
}
