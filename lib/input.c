/* input.c - the fz_dataset container shared by the IDX, CSV and image loaders. */
#include "input.h"

#include <stdlib.h>
#include <string.h>

static void free_strs(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void fz_dataset_free(fz_dataset *ds)
{
    if (!ds) return;
    free(ds->owned);
    if (!ds->owned) free(ds->x8);
    free(ds->xf);
    free(ds->label);
    free_strs(ds->classes, ds->nclasses);
    free_strs(ds->features, ds->nfeatures);
    free_strs(ds->paths, ds->paths ? ds->n : 0);
    free(ds->source);
    memset(ds, 0, sizeof *ds);
}

long fz_dataset_class(const fz_dataset *ds, const char *name)
{
    for (size_t i = 0; i < ds->nclasses; i++)
        if (strcmp(ds->classes[i], name) == 0) return (long)i;
    return -1;
}
