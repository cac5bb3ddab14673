#include <lzo/lzo1x.h>
/* lzo_init() is a macro over sizeof()s Swift cannot spell. */
static inline int cocomem_lzo_init(void) { return lzo_init(); }
static inline unsigned long cocomem_lzo1x_1_mem_compress(void) { return LZO1X_1_MEM_COMPRESS; }
