#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include <gio/gio.h>

#include "ppn-i18n.h"
#include "ppnctl-builtins.h"
#include "ppnctl-client.h"

static const PpnctlCommand commands[] = {
	{"vm", ppnctl_builtin_vm, N_("Create, list, show and delete VMs")},
	{"quota", ppnctl_builtin_quota, N_("Show how many VMs the tenant may run")},
	{"audit", ppnctl_builtin_audit, N_("List and verify the tenant's own audit entries")},
	{"images", ppnctl_builtin_images, N_("List the image catalog")},
	{"ca", ppnctl_builtin_ca, N_("Create the fleet CA (operators)")},
	{"cert", ppnctl_builtin_cert, N_("Issue a certificate from the fleet CA (operators)")},
	{"tenant", ppnctl_builtin_tenant, N_("Add a tenant to the tenants file (operators)")},
	{"ledger", ppnctl_builtin_ledger, N_("Verify the audit ledger and its proofs, offline")},
	{"node", ppnctl_builtin_node, N_("List the fleet's nodes and their load (operators)")},
	{NULL, NULL, NULL},
};

static int
ppnctl_report (const GError *error)
{
	PpnctlExit code = ppnctl_exit_code_for_error (error);
	g_auto(GStrv) lines = g_strsplit (error->message, "\n", -1);

	/* our own messages may have several lines; each is cleaned, as a
	 * server's message might carry terminal escapes */
	for (guint i = 0; lines[i] != NULL; i++) {
		g_autofree gchar *clean = ppnctl_sanitize (lines[i]);
		g_printerr (i == 0 ? "ppnctl: %s\n" : "%s\n", clean);
	}
	if (code == PPNCTL_EXIT_USAGE)
		g_printerr (_("Run '%s --help' for usage.\n"), g_get_prgname ());
	return (int)code;
}

int
main (int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GOptionContext) context = NULL;
	g_autofree gchar *summary = NULL;
	const gchar *name;

	ppn_i18n_init ();
	g_set_prgname ("ppnctl");
	summary = ppnctl_commands_help (commands);
	context = ppnctl_option_context_new (_("COMMAND [ARGUMENT…]"), summary, NULL);
	/* stop at the command: what follows is the command's to parse */
	g_option_context_set_strict_posix (context, TRUE);
	if (!ppnctl_option_context_parse (context, &argc, &argv, &error))
		return ppnctl_report (error);
	if (argc < 2) {
		ppnctl_usage_error (&error, _("No command given.\n%s"), summary);
		return ppnctl_report (error);
	}
	name = argv[1];
	for (guint i = 0; commands[i].name != NULL; i++) {
		if (g_strcmp0 (commands[i].name, name) == 0) {
			g_autofree gchar *prgname = g_strdup_printf ("ppnctl %s", name);
			g_set_prgname (prgname);
			if (!commands[i].fn (argc - 1, argv + 1, NULL, &error))
				return ppnctl_report (error);
			return PPNCTL_EXIT_OK;
		}
	}
	ppnctl_usage_error (&error, _("Unknown command '%s'.\n%s"), name, summary);
	return ppnctl_report (error);
}
