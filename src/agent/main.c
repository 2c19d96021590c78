#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>

#include "ppn-agent-config.h"
#include "ppn-agent.h"
#include "ppn-i18n.h"

typedef struct {
	GMainLoop *loop;
	PpnAgent *agent;
	gint status;
} PpnAgentMain;

static gboolean
ppn_agent_main_stop_cb (gpointer user_data)
{
	PpnAgentMain *m = user_data;

	g_message (_("Stopping"));
	g_main_loop_quit (m->loop);
	return G_SOURCE_CONTINUE;
}

static gboolean
ppn_agent_main_reload_cb (gpointer user_data)
{
	PpnAgentMain *m = user_data;

	if (m->agent != NULL)
		ppn_agent_reload (m->agent);
	return G_SOURCE_CONTINUE;
}

static void
ppn_agent_main_failed_cb (PpnAgent *agent, gpointer user_data)
{
	PpnAgentMain *m = user_data;

	m->status = EXIT_FAILURE;
	g_main_loop_quit (m->loop);
}

int
main (int argc, char **argv)
{
	g_autofree gchar *config_path = NULL;
	gboolean version = FALSE;
	const GOptionEntry entries[] = {
		{"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, N_("Configuration file"), N_("FILE")},
		{"version", 0, 0, G_OPTION_ARG_NONE, &version, N_("Show the version and exit"), NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) context = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnAgentConfig) config = NULL;
	g_autoptr(PpnAgent) agent = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	PpnAgentMain m = {NULL, NULL, EXIT_SUCCESS};
	guint sigterm_id, sigint_id, sighup_id;

	ppn_i18n_init ();
	context = g_option_context_new (NULL);
	g_option_context_set_summary (context, _("The ppn host agent: runs the node's VMs through libvirt"));
	g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
	if (!g_option_context_parse (context, &argc, &argv, &error)) {
		g_printerr ("ppn-agentd: %s\n", error->message);
		return EXIT_FAILURE;
	}
	if (version) {
		g_print ("ppn-agentd %s\n", PACKAGE_VERSION);
		return EXIT_SUCCESS;
	}
	if (config_path == NULL) {
		g_printerr ("ppn-agentd: %s\n", _("--config FILE is required"));
		return EXIT_FAILURE;
	}
	/* from here on SIGTERM stops cleanly, even before the loop runs */
	loop = g_main_loop_new (NULL, FALSE);
	m.loop = loop;
	sigterm_id = g_unix_signal_add (SIGTERM, ppn_agent_main_stop_cb, &m);
	sigint_id = g_unix_signal_add (SIGINT, ppn_agent_main_stop_cb, &m);
	sighup_id = g_unix_signal_add (SIGHUP, ppn_agent_main_reload_cb, &m);

	config = ppn_agent_config_load (config_path, &error);
	if (config == NULL) {
		g_printerr ("ppn-agentd: %s\n", error->message);
		return EXIT_FAILURE;
	}
	agent = ppn_agent_new (g_steal_pointer (&config), &error);
	if (agent == NULL) {
		g_printerr ("ppn-agentd: %s\n", error->message);
		return EXIT_FAILURE;
	}

	m.agent = agent;
	g_signal_connect (agent, "failed", G_CALLBACK (ppn_agent_main_failed_cb), &m);

	ppn_agent_start (agent);
	g_main_loop_run (loop);

	ppn_agent_stop (agent);
	g_source_remove (sigterm_id);
	g_source_remove (sigint_id);
	g_source_remove (sighup_id);
	if (ppn_agent_get_failed (agent, &error)) {
		g_printerr ("ppn-agentd: %s\n", error->message);
		return EXIT_FAILURE;
	}
	return m.status;
}
