// Standard output controls for the command-line tool: Swift 6 cannot touch C's global
// `stdout` (shared mutable state), so these two small wrappers do.
#include "slm_kernels.h"
#include <stdio.h>

void slm_stdout_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

void slm_stdout_flush(void) { fflush(stdout); }
