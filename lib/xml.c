/* xml: libxml2 adapter (see include/ras/xml.h). */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "ras/buf.h"
#include "ras/error.h"
#include "ras/xml.h"

/* --- reading ------------------------------------------------------------ */

/* --- writing ------------------------------------------------------------ */
