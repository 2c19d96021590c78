#pragma once

/* every user-facing string goes through _() or N_() */
#include <glib/gi18n.h>
#include <locale.h>

G_BEGIN_DECLS

static inline void
ppn_i18n_init (void)
{
	setlocale (LC_ALL, "");
	bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
	bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
	textdomain (GETTEXT_PACKAGE);
}

G_END_DECLS
