#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include <stdlib.h>

#include "ppn-fleet-config.h"
#include "ppn-fleet.h"
#include "ppn-i18n.h"

int
main (int argc, char **argv)
{
	g_autofree gchar *config_path = NULL;
	gboolean version = FALSE;
	const GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, N_("Configuration file"), N_("FILE")},
		{"version", 0, 0, G_OPTION_ARG_NONE, &version, N_("Print the version and exit"), NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) ctx = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnFleetConfig) config = NULL;
	g_autoptr(PpnFleet) fleet = NULL;

	ppn_i18n_init ();
	ctx = g_option_context_new (NULL);
	g_option_context_set_summary (ctx, _("ppn fleet controller with the embedded tenant proxy"));
	g_option_context_add_main_entries (ctx, entries, GETTEXT_PACKAGE);
	if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
		g_printerr ("ppn-fleetd: %s\n", error->message);
		return 2;
	}
	if (version) {
		g_print ("ppn-fleetd %s\n", PACKAGE_VERSION);
		return EXIT_SUCCESS;
	}
	if (config_path == NULL)
		config_path = g_strdup (PPN_SYSCONFDIR "/fleetd.conf");
	config = ppn_fleet_config_load (config_path, &error);
	if (config == NULL) {
		g_printerr ("ppn-fleetd: %s\n", error->message);
		return EXIT_FAILURE;
	}
	fleet = ppn_fleet_new (g_steal_pointer (&config));
	if (!ppn_fleet_start (fleet, &error) || !ppn_fleet_run (fleet, &error)) {
		g_printerr ("ppn-fleetd: %s\n", error->message);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
