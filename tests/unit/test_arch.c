/* test_arch - the presets: every name parses, round-trips through fz_arch_format, and the
 * one-line list the messages print names exactly the presets, in order. */
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "check.h"

static void test_presets_parse(void)
{
    for (const char *const *p = fz_arch_preset_names; *p; p++) {
        fz_err err = {0};
        char *text = fz_arch_preset(*p, 0, &err);
        CHECK_MSG(text != NULL, "%s: %s", *p, err.msg);
        if (!text) continue;
        fz_arch a, b;
        CHECK_MSG(fz_arch_parse(text, &a, &err) == 0, "%s: %s", *p, err.msg);
        char *canon = fz_arch_format(&a, &err);
        CHECK(canon != NULL);
        if (canon) {
            CHECK_MSG(fz_arch_parse(canon, &b, &err) == 0, "%s: %s", *p, err.msg);
            CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "%s does not round-trip", *p);
        }
        CHECK(a.latent > 0 && a.nenc > 0 && a.ndec > 0);
        /* the fuzzy-CVAE presets all have a fuzzy layer */
        if (strncmp(*p, "fcvae-", 6) == 0) CHECK_MSG(a.fuzzy_terms > 0, "%s", *p);
        free(canon);
        free(text);
    }
}

static void test_preset_list(void)
{
    char joined[512] = "";
    for (const char *const *p = fz_arch_preset_names; *p; p++) {
        if (p != fz_arch_preset_names) strcat(joined, ", ");
        strcat(joined, *p);
    }
    CHECK_MSG(strcmp(joined, FZ_ARCH_PRESET_LIST) == 0, "names '%s' vs list '%s'", joined,
              FZ_ARCH_PRESET_LIST);
    fz_err err = {0};
    CHECK(fz_arch_preset("no-such-preset", 0, &err) == NULL);
    CHECK(strstr(err.msg, "fcvae-cnn") != NULL);
}

static void test_latent_override(void)
{
    fz_err err = {0};
    char *text = fz_arch_preset("fcvae-cnn", 5, &err);
    fz_arch a;
    CHECK(text && fz_arch_parse(text, &a, &err) == 0);
    CHECK_EQ_INT(a.latent, 5);
    free(text);
}

int main(void)
{
    test_presets_parse();
    test_preset_list();
    test_latent_override();
    return check_report("test_arch");
}
