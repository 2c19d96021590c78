#pragma once

/* one entry point per command group, in ostree's ot-builtin-* style: each
 * gets the arguments from its own name on, parses them with its own
 * GOptionContext and fails by returning FALSE with @error set */
#include <gio/gio.h>

G_BEGIN_DECLS

typedef gboolean (*PpnctlBuiltinFunc) (int argc, char **argv, GCancellable *cancellable, GError **error);

typedef struct {
	const gchar *name;
	PpnctlBuiltinFunc fn;
	const gchar *summary; /* N_() */
} PpnctlCommand;

gboolean ppnctl_builtin_vm (int argc, char **argv, GCancellable *cancellable, GError **error);
gboolean ppnctl_builtin_quota (int argc, char **argv, GCancellable *cancellable, GError **error);
gboolean ppnctl_builtin_audit (int argc, char **argv, GCancellable *cancellable, GError **error);
gboolean ppnctl_builtin_images (int argc, char **argv, GCancellable *cancellable, GError **error);
gboolean ppnctl_builtin_ca (int argc, char **argv, GCancellable *cancellable, GError **error);
gboolean ppnctl_builtin_cert (int argc, char **argv, GCancellable *cancellable, GError **error);
gboolean ppnctl_builtin_tenant (int argc, char **argv, GCancellable *cancellable, GError **error);
gboolean ppnctl_builtin_ledger (int argc, char **argv, GCancellable *cancellable, GError **error);
gboolean ppnctl_builtin_node (int argc, char **argv, GCancellable *cancellable, GError **error);

G_END_DECLS
