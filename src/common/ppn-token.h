#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Bearer tokens. Only ppnctl (which mints them) and the tenant proxy
 * (which checks them) use this; nothing else ever holds a token. */

#define PPN_TOKEN_PREFIX "ppn_"
#define PPN_TOKEN_HASH_PREFIX "sha256:"
#define PPN_TOKEN_DIGEST_LEN 32

gchar *ppn_token_new (GError **error);
gboolean ppn_token_digest (const gchar *token, guint8 digest[PPN_TOKEN_DIGEST_LEN]);
gchar *ppn_token_hash (const gchar *token);
gboolean ppn_token_hash_parse (const gchar *hash, guint8 digest[PPN_TOKEN_DIGEST_LEN], GError **error);
gboolean ppn_token_digest_equal (const guint8 *a, const guint8 *b);

G_END_DECLS
