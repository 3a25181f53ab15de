/* fz-train - train an autoencoder or VAE on a stream, writing a model file with a
 * checkpoint after every epoch. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "json.h"
#include "mask.h"
#include "model.h"
#include "train.h"

static const char *prog = "fz-train";

static void usage(FILE *to)
{
    fprintf(to,
            "usage: fz-train -o model [-a arch] [-z latent] [-i model | -R] [-m epochs] [-B batch]\n"
            "                [-r rate] [-s seed] [-t threads] [-v valid] [-l log.tsv] [options] [train]\n");
}

typedef struct options {
    const char *arch, *out, *in, *valid, *log, *train, *field;
    int latent, resume, threads, quiet, drop_nonfinite;
    fz_train_conf conf;
    /* which training settings the user gave (the rest come from the preset) */
    int set_batch, set_lr, set_optim, set_wd, set_clip, set_loss, set_red, set_rw, set_beta,
        set_kl, set_mom;
    double lr, wd, clip, rw, beta, momentum, gamma, redraw;
    int set_gamma, set_fnorm, set_redraw;
    int circle_by_data; /* --circle-order data */
    fz_strategy strategy;
    int two_step;
    unsigned freeze;
    fz_mask_norm fnorm;
    int batch;
    fz_opt_kind optim;
    fz_recon recon;
    fz_reduction red;
    fz_kl_form kl;
    const char *sched;
} options;

static void help(const options *o)
{
    usage(stdout);
    printf(
        "\nTrain an autoencoder (ae) or variational autoencoder (vae) on the rows of a stream\n"
        "(default: standard input). After every epoch the model, with the optimiser state, is\n"
        "written atomically to the output file, so an interrupted run loses at most an epoch.\n"
        "\nModel:\n"
        "  -a arch      a preset, a file holding a description, or the description\n"
        "               itself (see fz-train(1)); default vae-mlp. Presets:\n"
        "               " FZ_ARCH_PRESET_LIST "\n"
        "  -z latent    latent size of a preset (default: the preset's)\n"
        "  -i model     start from this model's weights (fine-tuning)\n"
        "  -R           resume: continue the checkpoint in the output file if there is one\n"
        "  -o model     output model file (required)\n"
        "\nTraining (defaults depend on the preset, see fz-train(1)):\n"
        "  -m epochs    train until this many epochs in total (default 10)\n"
        "  -B batch     batch size\n"
        "  -r rate      learning rate\n"
        "  -s seed      seed of initialisation, order, dropout and sampling (default 0)\n"
        "  --optim adam|adamw|sgd  --wd DECAY  --momentum M  --clip NORM\n"
        "  --schedule const|step:EVERY:GAMMA|cos:T:MIN[,warmup:W]   (by epoch)\n"
        "\nLoss:\n"
        "  --loss bce|mse|sse     reconstruction loss (mse/sse: squared error, mean/sum)\n"
        "  --reduction sum|mean|batch|rows   how the reconstruction terms are reduced\n"
        "  --recon-weight W  --beta B      weights of reconstruction and KL\n"
        "  --kl logvar|softplus   KL form for a vae (see fz-train(1))\n"
        "  --denoise gauss:SIGMA|flip:P    corrupt inputs, compare with the clean ones\n"
        "\nFuzzy layer (models with one; the stream gives target and mask, see fz-mask(1)):\n"
        "  --gamma G              weight of the fuzzy loss (default 1)\n"
        "  --fuzzy-norm batch|labeled  average it over the batch or its labeled rows\n"
        "  --redraw P             use each row's labels with probability P, anew every\n"
        "                         epoch (default: the stream's mask_redraw, else off)\n"
        "  --strategy S           all (default), ae (no head), head (frozen encoder),\n"
        "                         classifier (encoder + head), vclassifier (head on z)\n"
        "  --two-step             two optimiser steps per batch: VAE loss, then fuzzy loss\n"
        "  --freeze LIST          leave these alone: encoder, decoder, centers, scales,\n"
        "                         lower, bell, conseq (comma-separated)\n"
        "  --circle-order index|data  the class terms' order on the circle of a new model:\n"
        "                         class index, or the angles of the untrained encoder's\n"
        "                         class means (default %s)\n"
        "\nData and output:\n"
        "  -f field     input field (default x)\n"
        "  -v valid     validation stream, evaluated after every epoch\n"
        "  -l log.tsv   per-epoch losses as TSV\n"
        "  --drop-nonfinite  skip rows with NaN or infinity instead of stopping\n"
        "  -t threads   threads of the products and layers (default: one per core)\n"
        "  -q           no progress on standard error\n"
        "  -h           this help\n"
        "\nExit 0 ok, 1 data or runtime error (the last good checkpoint is kept), 2 usage;\n"
        "SIGINT, SIGTERM or SIGHUP stop after the current batch, dropping the unfinished\n"
        "epoch, and end the run by that signal (status 130, 143, 129).\n",
        o->circle_by_data ? "data" : "index");
}

static int die_usage(const char *msg)
{
    fprintf(stderr, "%s: %s\n", prog, msg);
    return 2;
}

enum {
    OPT_OPTIM = 256, OPT_WD, OPT_MOM, OPT_CLIP, OPT_SCHED, OPT_LOSS, OPT_RED, OPT_RW, OPT_BETA,
    OPT_KL, OPT_DENOISE, OPT_DROP, OPT_GAMMA, OPT_FNORM, OPT_REDRAW, OPT_STRATEGY, OPT_TWO,
    OPT_FREEZE, OPT_CIRCLE
};

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"optim", required_argument, 0, OPT_OPTIM}, {"wd", required_argument, 0, OPT_WD},
        {"momentum", required_argument, 0, OPT_MOM}, {"clip", required_argument, 0, OPT_CLIP},
        {"schedule", required_argument, 0, OPT_SCHED}, {"loss", required_argument, 0, OPT_LOSS},
        {"reduction", required_argument, 0, OPT_RED},
        {"recon-weight", required_argument, 0, OPT_RW}, {"beta", required_argument, 0, OPT_BETA},
        {"kl", required_argument, 0, OPT_KL}, {"denoise", required_argument, 0, OPT_DENOISE},
        {"drop-nonfinite", no_argument, 0, OPT_DROP}, {"help", no_argument, 0, 'h'},
        {"gamma", required_argument, 0, OPT_GAMMA}, {"fuzzy-norm", required_argument, 0, OPT_FNORM},
        {"redraw", required_argument, 0, OPT_REDRAW},
        {"strategy", required_argument, 0, OPT_STRATEGY},
        {"two-step", no_argument, 0, OPT_TWO}, {"freeze", required_argument, 0, OPT_FREEZE},
        {"circle-order", required_argument, 0, OPT_CIRCLE},
        {0, 0, 0, 0}};
    fz_err err;
    long v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "a:z:i:Ro:m:B:r:s:t:f:v:l:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'a': o->arch = optarg; break;
        case 'z':
            if (fz_parse_long(optarg, 1, 4096, &v, "-z", &err)) goto bad;
            o->latent = (int)v;
            break;
        case 'i': o->in = optarg; break;
        case 'R': o->resume = 1; break;
        case 'o': o->out = optarg; break;
        case 'm':
            if (fz_parse_long(optarg, 1, 1000000, &v, "-m", &err)) goto bad;
            o->conf.epochs = (int)v;
            break;
        case 'B':
            if (fz_parse_long(optarg, 1, 1 << 20, &v, "-B", &err)) goto bad;
            o->batch = (int)v;
            o->set_batch = 1;
            break;
        case 'r':
            if (fz_parse_double(optarg, 1e-12, 100, &o->lr, "-r", &err)) goto bad;
            o->set_lr = 1;
            break;
        case 's':
            if (fz_parse_long(optarg, 0, 2147483647L, &v, "-s", &err)) goto bad;
            o->conf.seed = (uint64_t)v;
            break;
        case 't':
            if (fz_parse_long(optarg, 1, 256, &v, "-t", &err)) goto bad;
            o->threads = (int)v;
            break;
        case 'f': o->field = optarg; break;
        case 'v': o->valid = optarg; break;
        case 'l': o->log = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'h': help(o); exit(0);
        case OPT_OPTIM:
            if (fz_opt_kind_parse(optarg, &o->optim, &err)) goto bad;
            o->set_optim = 1;
            break;
        case OPT_WD:
            if (fz_parse_double(optarg, 0, 10, &o->wd, "--wd", &err)) goto bad;
            o->set_wd = 1;
            break;
        case OPT_MOM:
            if (fz_parse_double(optarg, 0, 0.9999, &o->momentum, "--momentum", &err)) goto bad;
            o->set_mom = 1;
            break;
        case OPT_CLIP:
            if (fz_parse_double(optarg, 0, 1e9, &o->clip, "--clip", &err)) goto bad;
            o->set_clip = 1;
            break;
        case OPT_SCHED: o->sched = optarg; break;
        case OPT_LOSS:
            o->set_loss = 1;
            if (strcmp(optarg, "bce") == 0) o->recon = FZ_RECON_BCE;
            else if (strcmp(optarg, "mse") == 0 || strcmp(optarg, "sse") == 0) {
                o->recon = FZ_RECON_SQERR;
                if (!o->set_red) o->red = optarg[0] == 'm' ? FZ_RED_MEAN : FZ_RED_SUM;
                o->set_red = 2; /* implied by the loss name; --reduction still overrides */
            } else
                return die_usage("--loss: expected bce, mse or sse");
            break;
        case OPT_RED:
            if (fz_reduction_parse(optarg, &o->red, &err)) goto bad;
            o->set_red = 1;
            break;
        case OPT_RW:
            if (fz_parse_double(optarg, 0, 1e9, &o->rw, "--recon-weight", &err)) goto bad;
            o->set_rw = 1;
            break;
        case OPT_BETA:
            if (fz_parse_double(optarg, 0, 1e9, &o->beta, "--beta", &err)) goto bad;
            o->set_beta = 1;
            break;
        case OPT_KL:
            if (strcmp(optarg, "logvar") == 0) o->kl = FZ_KL_LOGVAR;
            else if (strcmp(optarg, "softplus") == 0) o->kl = FZ_KL_SOFTPLUS;
            else return die_usage("--kl: expected logvar or softplus");
            o->set_kl = 1;
            break;
        case OPT_DENOISE: {
            const char *colon = strchr(optarg, ':');
            if (!colon) return die_usage("--denoise: expected gauss:SIGMA or flip:P");
            if (strncmp(optarg, "gauss:", 6) == 0) o->conf.corrupt = FZ_CORRUPT_GAUSS;
            else if (strncmp(optarg, "flip:", 5) == 0) o->conf.corrupt = FZ_CORRUPT_FLIP;
            else return die_usage("--denoise: expected gauss:SIGMA or flip:P");
            if (fz_parse_double(colon + 1, 0, o->conf.corrupt == FZ_CORRUPT_FLIP ? 1 : 1e6,
                                &o->conf.corrupt_level, "--denoise", &err))
                goto bad;
            break;
        }
        case OPT_DROP: o->drop_nonfinite = 1; break;
        case OPT_GAMMA:
            if (fz_parse_double(optarg, 0, 1e9, &o->gamma, "--gamma", &err)) goto bad;
            o->set_gamma = 1;
            break;
        case OPT_FNORM:
            if (strcmp(optarg, "batch") == 0) o->fnorm = FZ_MASK_PER_BATCH;
            else if (strcmp(optarg, "labeled") == 0) o->fnorm = FZ_MASK_PER_ACTIVE;
            else return die_usage("--fuzzy-norm: expected batch or labeled");
            o->set_fnorm = 1;
            break;
        case OPT_TWO: o->two_step = 1; break;
        case OPT_FREEZE:
            if (fz_freeze_parse(optarg, &o->freeze, &err)) goto bad;
            break;
        case OPT_STRATEGY:
            if (fz_strategy_parse(optarg, &o->strategy, &err)) goto bad;
            break;
        case OPT_CIRCLE:
            if (strcmp(optarg, "index") == 0) o->circle_by_data = 0;
            else if (strcmp(optarg, "data") == 0) o->circle_by_data = 1;
            else return die_usage("--circle-order: expected index or data");
            break;
        case OPT_REDRAW:
            if (fz_parse_double(optarg, 0, 1, &o->redraw, "--redraw", &err)) goto bad;
            o->set_redraw = 1;
            break;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) o->train = argv[optind++];
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!o->out) return die_usage("no output model: give -o FILE");
    if (o->in && o->resume) return die_usage("-i and -R exclude each other");
    return 0;
bad:
    fprintf(stderr, "%s: %s\n", prog, err.msg);
    return 2;
}

/* The architecture text from -a: a preset name, a file, or the description itself. */
static char *arch_text(const char *a, int latent, fz_err *err)
{
    for (const char *const *p = fz_arch_preset_names; *p; p++)
        if (strcmp(*p, a) == 0) return fz_arch_preset(a, latent, err);
    if (strchr(a, '=')) return strdup(a);
    FILE *f = fopen(a, "r");
    if (!f) {
        fz_fail(err, FZ_EUSAGE,
                "-a %s: not a preset (" FZ_ARCH_PRESET_LIST "), a description or a readable file",
                a);
        return NULL;
    }
    char *buf = calloc(1, 65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    int more = buf && fgetc(f) != EOF;
    fclose(f);
    if (more) {
        free(buf);
        fz_fail(err, FZ_EDATA, "%s: architecture description longer than 65535 bytes", a);
        return NULL;
    }
    if (!buf || n == 0) {
        free(buf);
        fz_fail(err, FZ_EDATA, "%s: empty or unreadable architecture file", a);
        return NULL;
    }
    return buf;
}

/* A preset's fuzzy layer gets as many terms as the stream has outputs (fz-mask decides:
 * 10 digits, or 12 with loop/open): "fuzzy = gauss(10)" -> "fuzzy = gauss(12)". */
static char *preset_terms(char *text, size_t k)
{
    char *o = strstr(text, "outputs = ");
    if (o) { /* a dense head: "outputs = 10" -> "outputs = K" */
        size_t need = strlen(text) + 32;
        char *out = malloc(need);
        if (!out) return text;
        const char *rest = o + strlen("outputs = ");
        while (*rest >= '0' && *rest <= '9') rest++;
        snprintf(out, need, "%.*soutputs = %zu%s", (int)(o - text), text, k, rest);
        free(text);
        return out;
    }
    char *f = strstr(text, "fuzzy = ");
    char *paren = f ? strchr(f, '(') : NULL;
    char *close = paren ? strchr(paren, ')') : NULL;
    if (!close) return text;
    size_t need = strlen(text) + 32;
    char *out = malloc(need);
    if (!out) return text;
    snprintf(out, need, "%.*s(%zu%s", (int)(paren - text), text, k, close);
    free(text);
    return out;
}

/* Settings the user gave override the preset's defaults. */
static void apply_overrides(options *o, const char *preset, fz_model_kind kind)
{
    fz_train_conf c;
    fz_train_defaults(&c, preset, kind);
    c.epochs = o->conf.epochs ? o->conf.epochs : c.epochs;
    c.seed = o->conf.seed;
    c.corrupt = o->conf.corrupt;
    c.corrupt_level = o->conf.corrupt_level;
    if (o->set_batch) c.batch = o->batch;
    if (o->set_optim && o->optim != c.opt.kind) {
        double wd = c.opt.weight_decay;
        c.opt = fz_opt_defaults(o->optim);
        if (o->optim == FZ_OPT_ADAMW && wd > 0) c.opt.weight_decay = wd;
    }
    if (o->set_wd) c.opt.weight_decay = o->wd;
    if (o->set_mom) c.opt.momentum = o->momentum;
    if (o->set_lr) c.sched.lr = o->lr;
    if (o->set_clip) c.clip = o->clip;
    if (o->set_loss) c.recon = o->recon;
    if (o->set_red) c.recon_red = o->red;
    if (o->set_rw) c.recon_weight = o->rw;
    if (o->set_beta) c.beta = o->beta;
    if (o->set_kl) c.kl_form = o->kl;
    if (o->set_gamma) c.gamma = o->gamma;
    if (o->set_fnorm) c.fuzzy_norm = o->fnorm;
    if (o->set_redraw) c.redraw = o->redraw;
    c.strategy = o->strategy;
    c.two_step = o->two_step;
    c.freeze = o->freeze;
    o->conf = c;
}

/* ---- progress ---- */

typedef struct progress {
    int tty, quiet;
    long epochs;
    double last;
} progress;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(double s, char *buf, size_t cap)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* ---- interruptions ---- */

/* The first SIGINT, SIGTERM or SIGHUP asks training to stop after the current batch. The
 * epoch in progress is dropped: a checkpoint in the middle of an epoch could not be resumed
 * bit for bit (the order of the rows and the random draws are those of the whole epoch).
 * The last end-of-epoch checkpoint is already on disk, written atomically. The handler only
 * records the signal; everything else happens in main(). */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (!stop_signal) stop_signal = sig;
}

/* Catch the signals that ask a run to end, except those ignored on entry (nohup, or an
 * asynchronous command of a non-interactive shell, which ignores SIGINT). Further signals
 * only set the same flag, so a second Ctrl-C cannot cut a checkpoint being written. */
static void catch_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&sa.sa_mask, sigs[i]);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
}

/* End the process by the signal that stopped it, with its default action, so that the
 * caller sees it (a shell reports 128 + the signal number and stops a script on Ctrl-C). */
static int die_by_signal(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    return 128 + sig; /* not reached */
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

/* Remove "<out>.tmp.<pid>" files that a killed run of a process that no longer exists left
 * behind (fz_st_write names its temporary files so). A live process's file is kept. */
static void remove_stale_temps(const char *out)
{
    const char *slash = strrchr(out, '/');
    const char *base = slash ? slash + 1 : out;
    size_t dlen = slash ? (size_t)(slash - out) + 1 : 0, blen = strlen(base);
    char dir[4096];
    if (dlen + 1 > sizeof dir || blen == 0) return;
    memcpy(dir, out, dlen);
    dir[dlen] = '\0';
    DIR *d = opendir(dlen ? dir : ".");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0) continue;
        const char *digits = n + blen + 5;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (end == digits || *end || errno || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s%s", dir, n);
        unlink(path);
    }
    closedir(d);
}

static int on_batch(void *ctx, long epoch, long batch, long nbatches, const fz_epoch_stats *st)
{
    progress *p = ctx;
    if (stop_signal) return 1;
    if (p->quiet || !p->tty) return 0;
    double t = now();
    if (batch != nbatches && t - p->last < 0.2) return 0;
    p->last = t;
    int width = 24, fill = (int)((double)width * batch / nbatches);
    char bar[32], eta[48];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[width] = '\0';
    double rate = st->seconds > 0 ? (double)st->samples / st->seconds : 0;
    double left = st->seconds / batch * (nbatches - batch);
    fmt_time(left, eta, sizeof eta);
    char acc[32] = "";
    if (st->labeled) snprintf(acc, sizeof acc, " acc %.1f%%", 100.0 * st->correct / st->labeled);
    fprintf(stderr, "\r\033[Kepoch %ld/%ld [%s] %ld/%ld loss %.5g (recon %.5g kl %.4g)%s %.0f/s ETA %s",
            epoch, p->epochs, bar, batch, nbatches, st->loss, st->recon, st->kl, acc, rate, eta);
    return 0;
}

static FILE *open_log(const char *path, int append, fz_err *err)
{
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) {
        fz_fail(err, fz_errno_code(errno), "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!append || ftell(f) == 0)
        fprintf(f, "epoch\tloss\trecon\tkl\tval_loss\tval_recon\tval_kl\tlr\tseconds\tsamples_per_s"
                   "\tgrad_norm\tfuzzy\taccuracy\tval_fuzzy\tval_accuracy\n");
    return f;
}

static int fail(const fz_err *err)
{
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    return 1;
}

/* What the stream's metadata says about training: inputs shifted to [-0.5, 0.5] are
 * reconstructed in [0, 1]; the number of classes; the redraw probability of fz-mask. */
static void stream_settings(fz_train_conf *c, const char *stream_meta, int take_redraw)
{
    fz_err err;
    fz_json *j = stream_meta ? fz_json_parse(stream_meta, strlen(stream_meta), &err) : NULL;
    if (!j) return;
    const char *mode = fz_json_str(fz_json_get(fz_json_get(j, "norm"), "mode"));
    if (mode && strcmp(mode, "shift") == 0) c->recon_shift = 0.5;
    const fz_json *cl = fz_json_get(j, "classes");
    if (cl && fz_json_type(cl) == FZ_JARR) c->nclasses = (int)fz_json_len(cl);
    double r = fz_json_num(fz_json_get(j, "mask_redraw"), 0);
    if (take_redraw && r > 0 && r <= 1) c->redraw = r;
    fz_json_free(j);
}

/* Class names and normalisation travel from the stream into the model. */
static void carry_meta(fz_model *m, const char *stream_meta)
{
    fz_err err;
    fz_json *j = fz_json_parse(stream_meta, strlen(stream_meta), &err);
    if (!j) return;
    static const char *const keys[] = {"classes", "norm", "features", "outputs", "attributes", NULL};
    for (const char *const *k = keys; *k; k++) {
        const fz_json *v = fz_json_get(j, *k);
        if (!v) continue;
        fz_sbuf b;
        fz_sbuf_init(&b);
        fz_sbuf_json_node(&b, v);
        char *s = fz_sbuf_take(&b);
        if (s) fz_model_set_meta(m, *k, s, &err);
        free(s);
    }
    fz_json_free(j);
}

/* A fresh fuzzy layer started on a circle (fuzzy_init = circle(R)), trained on a stream with
 * target and mask. Index order: on a stream whose outputs are classes and then attributes
 * (fz-mask -a), each attribute's classes go next to each other on the circle and the
 * attribute terms start over their classes (fz_fuzzy_init_circle_groups); otherwise the
 * class order of fz_model_create stays. Data order: the untrained encoder's class means,
 * taken in angular order, set the classes' places (fz_circle_order_by_angle), so classes it
 * maps close together start close together; attribute terms again start over their classes.
 * 0, or -1 with a reason. */
static int place_circle(fz_model *m, const fz_trainset *ds, const char *stream_meta,
                        uint64_t seed, int by_data, int quiet, fz_err *err)
{
    if (!m->has_fuzzy || !(m->arch.fuzzy_circle > 0)) return 0;
    fz_err ignored;
    fz_mask mk;
    int have_mask = stream_meta && fz_mask_from_stream_meta(&mk, stream_meta, &ignored) == 0;
    if (have_mask && mk.nout != m->fuzzy.K) {
        fz_mask_free(&mk);
        have_mask = 0;
    }
    int nclass = have_mask ? mk.K : m->fuzzy.K, nattr = m->fuzzy.K - nclass, rc = 0;
    const unsigned char *member = have_mask ? mk.attr : NULL;
    if (!by_data) {
        if (nattr > 0) {
            fz_rng rng;
            fz_rng_seed(&rng, seed ^ 0x9e3779b97f4a7c15ull);
            if (fz_fuzzy_init_circle_groups(&m->fuzzy, m->arch.fuzzy_circle, nclass, nattr,
                                            member, &rng, err) == 0 && !quiet)
                fprintf(stderr, "%s: %d class terms on the circle, each attribute's classes side "
                                "by side; %d attribute term%s over their classes\n",
                        prog, nclass, nattr, nattr == 1 ? "" : "s");
        }
        if (have_mask) fz_mask_free(&mk);
        return 0;
    }
    double *means = malloc((size_t)nclass * 2 * sizeof *means); /* (nclass, 2) */
    size_t *count = malloc((size_t)nclass * sizeof *count);     /* (nclass) */
    int *slot = malloc((size_t)nclass * sizeof *slot);          /* (nclass) */
    double a0 = 0;
    if (!means || !count || !slot) rc = fz_fail(err, FZ_ENOMEM, "out of memory");
    if (!rc) rc = fz_class_mean_codes(m, ds, nclass, means, count, err);
    if (!rc) rc = fz_circle_order_by_angle(nclass, means, count, slot, &a0, err);
    if (!rc)
        rc = fz_fuzzy_init_circle_slots(&m->fuzzy, m->arch.fuzzy_circle, nclass, nattr, member,
                                        slot, a0, err);
    if (!rc && !quiet) {
        /* the classes counter-clockwise from slot 0, by name */
        fprintf(stderr, "%s: class terms on the circle in the order of the untrained codes:", prog);
        for (int i = 0; i < nclass; i++)
            for (int c = 0; c < nclass; c++)
                if (slot[c] == i) {
                    if (have_mask) fprintf(stderr, " %s", mk.name[c]);
                    else fprintf(stderr, " %d", c);
                    if (!count[c]) fputs("(no rows)", stderr);
                }
        if (nattr > 0)
            fprintf(stderr, "; %d attribute term%s over their classes", nattr, nattr == 1 ? "" : "s");
        fputc('\n', stderr);
    }
    free(means);
    free(count);
    free(slot);
    if (have_mask) fz_mask_free(&mk);
    return rc;
}

/* What main() holds, released by finish() on every way out (so that leak checkers see a
 * clean exit after an error too). */
static fz_trainset train, valid;
static char *meta;
static fz_model m;
static fz_trainer *t;
static FILE *log_file;

static int finish(int rc)
{
    if (log_file) fclose(log_file);
    fz_trainer_free(t);
    fz_model_free(&m);
    fz_trainset_free(&train);
    fz_trainset_free(&valid);
    free(meta);
    return rc;
}

int main(int argc, char **argv)
{
    int switched = fz_blas_init(argc, argv);
    fz_blas_ftz(1);
    signal(SIGPIPE, SIG_IGN);
    options o = {0};
    o.field = "x";
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc;
    fz_err err;
    if (switched && fz_blas_selfcheck(&err)) return fail(&err);
    if (o.threads) fz_blas_set_threads(o.threads);

    fz_shape shape, vshape;
    size_t dropped = 0;
    if (fz_trainset_load(o.train ? o.train : "-", o.field, o.drop_nonfinite, &train, &shape, &meta,
                        &dropped, &err))
        return finish(fail(&err));
    if (dropped) fprintf(stderr, "%s: dropped %zu training rows with NaN or infinity\n", prog, dropped);
    if (o.valid && fz_trainset_load(o.valid, o.field, o.drop_nonfinite, &valid, &vshape, NULL,
                                   &dropped, &err))
        return finish(fail(&err));

    struct stat st;
    const char *start = o.in ? o.in : (o.resume && stat(o.out, &st) == 0) ? o.out : NULL;
    const char *preset = NULL;
    /* The preset whose training defaults apply: the one named by -a, or when resuming or
     * fine-tuning without -a, the one the model was trained with (none for a model of a
     * custom description: then the defaults follow its kind). */
    for (const char *const *p = fz_arch_preset_names; o.arch && *p; p++)
        if (strcmp(*p, o.arch) == 0) preset = *p;
    if (start) {
        if (fz_model_load(&m, start, &err)) return finish(fail(&err));
        if (o.in) { /* fine-tuning: a new optimiser and epoch count */
            free(m.opt_state);
            m.opt_state = NULL;
            m.epoch = m.step = 0;
        }
        if (m.in.c != shape.c || m.in.h != shape.h || m.in.w != shape.w) {
            char a[64], b[64];
            fprintf(stderr, "%s: %s takes inputs of shape %s, the stream's '%s' is %s\n", prog,
                    start, fz_model_shape_str(m.in, a, sizeof a), o.field,
                    fz_model_shape_str(shape, b, sizeof b));
            return finish(1);
        }
        const char *tr = fz_model_meta(&m, "train");
        /* a resumed run keeps the preset's defaults of the original run */
        if (tr && strstr(tr, "\"preset\":\"")) {
            const char *p = strstr(tr, "\"preset\":\"") + 10;
            for (const char *const *q = fz_arch_preset_names; *q; q++)
                if (strncmp(p, *q, strlen(*q)) == 0 && p[strlen(*q)] == '"') preset = *q;
        }
    } else {
        char *text = arch_text(o.arch ? o.arch : "vae-mlp", o.latent, &err);
        if (!o.arch) preset = "vae-mlp";
        if (text && preset && train.k) text = preset_terms(text, train.k);
        if (!text) return finish(fail(&err));
        rc = fz_model_create(&m, text, shape, o.conf.seed, &err);
        free(text);
        if (rc) return finish(fail(&err));
        if (o.circle_by_data && !(m.has_fuzzy && m.arch.fuzzy_circle > 0)) {
            fprintf(stderr, "%s: --circle-order data: the model has no fuzzy layer started on a "
                            "circle (fuzzy_init = circle(R))\n", prog);
            return finish(2);
        }
        if (place_circle(&m, &train, meta, o.conf.seed, o.circle_by_data, o.quiet, &err))
            return finish(fail(&err));
    }
    apply_overrides(&o, preset, m.arch.kind);
    stream_settings(&o.conf, meta, !o.set_redraw);
    int K = fz_model_terms(&m);
    if (K && train.k && train.k != (size_t)K) {
        fprintf(stderr, "%s: the stream's target and mask have %zu outputs, the model's %s %d\n",
                prog, train.k, m.has_head ? "head" : "fuzzy layer", K);
        return finish(1);
    }
    if (K && !train.k && !o.quiet)
        fprintf(stderr, "%s: the stream has no target and mask (see fz-mask(1)): the fuzzy layer "
                        "will not train\n", prog);
    if (o.sched && fz_sched_parse(o.sched, o.conf.sched.lr, &o.conf.sched, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return finish(2);
    }
    if (valid.n && valid.d != train.d) {
        char a[64], b[64];
        fprintf(stderr, "%s: %s: '%s' has shape %s, the training stream's is %s\n", prog,
                o.valid, o.field, fz_model_shape_str(vshape, a, sizeof a),
                fz_model_shape_str(shape, b, sizeof b));
        return finish(1);
    }
    carry_meta(&m, meta);
    char *conf_json = fz_train_conf_json(&o.conf);
    if (conf_json && preset) { /* remember the preset so that -R applies the same defaults */
        size_t n = strlen(conf_json);
        char *with = malloc(n + 64);
        if (with) {
            snprintf(with, n + 64, "{\"preset\":\"%s\",%s", preset, conf_json + 1);
            free(conf_json);
            conf_json = with;
        }
    }
    /* The order the class terms started in: this run's for a new model; a resumed or
     * fine-tuned one keeps the order its terms were started in. */
    if (conf_json && m.has_fuzzy && m.arch.fuzzy_circle > 0) {
        const char *tr = start ? fz_model_meta(&m, "train") : NULL;
        int by_data = start ? tr && strstr(tr, "\"circle_order\":\"data\"") != NULL
                            : o.circle_by_data;
        size_t n = strlen(conf_json); /* ends in '}': the key goes last */
        char *with = malloc(n + 64);
        if (with) {
            snprintf(with, n + 64, "%.*s,\"circle_order\":\"%s\"}", (int)(n - 1), conf_json,
                     by_data ? "data" : "index");
            free(conf_json);
            conf_json = with;
        }
    }
    if (conf_json) fz_model_set_meta(&m, "train", conf_json, &err);
    free(conf_json);

    t = fz_trainer_new(&m, &o.conf, &err);
    if (!t) return finish(fail(&err));
    if (o.log && !(log_file = open_log(o.log, start && !o.in, &err))) return finish(fail(&err));
    progress p = {isatty(2), o.quiet, o.conf.epochs, 0};
    if (!o.quiet)
        fprintf(stderr, "%s: %zu rows of %zu values, %zu parameters, %s on OpenBLAS %s, epochs %ld..%d\n",
                prog, train.n, train.d, m.nparams,
                m.arch.kind == FZ_KIND_VAE ? "vae" : "ae", fz_blas_corename(), m.epoch + 1,
                o.conf.epochs);
    remove_stale_temps(o.out);
    catch_signals();
    long saved = start && !o.in ? m.epoch : -1; /* the epoch of the checkpoint in o.out */
    rc = 0;
    while (m.epoch < o.conf.epochs && !stop_signal) {
        fz_epoch_stats es, vs = {0};
        int r = fz_trainer_epoch(t, &train, on_batch, &p, &es, &err);
        if (p.tty && !o.quiet) fputs("\r\033[K", stderr);
        if (r > 0) break; /* a signal: the incomplete epoch is dropped */
        if (r) {
            fprintf(stderr, "%s: %s; %s keeps the checkpoint of epoch %ld\n", prog, err.msg,
                    o.out, m.epoch);
            rc = 1;
            break;
        }
        if (valid.n && fz_trainer_evaluate(t, &valid, &vs, &err)) {
            rc = fail(&err);
            break;
        }
        /* After the last epoch the model also carries the training data's anomaly scores. */
        if (m.epoch == o.conf.epochs &&
            fz_trainer_reference_scores(t, &train, &err)) {
            rc = fail(&err);
            break;
        }
        if (fz_model_save(&m, o.out, fz_trainer_optim(t), &err)) {
            /* the save is atomic: the file holds what it held before */
            if (saved >= 0)
                fprintf(stderr, "%s: %s; %s keeps the checkpoint of epoch %ld\n", prog, err.msg,
                        o.out, saved);
            else
                fprintf(stderr, "%s: %s; %s was not written\n", prog, err.msg, o.out);
            rc = 1;
            break;
        }
        saved = m.epoch;
        double rate = es.seconds > 0 ? (double)es.samples / es.seconds : 0;
        if (!o.quiet) {
            fprintf(stderr, "epoch %ld/%d loss %.6g recon %.6g kl %.5g", m.epoch, o.conf.epochs,
                    es.loss, es.recon, es.kl);
            if (K) fprintf(stderr, " fuzzy %.5g", es.fuzzy);
            if (es.labeled) fprintf(stderr, " acc %.2f%%", 100.0 * es.correct / es.labeled);
            if (valid.n) fprintf(stderr, " | valid loss %.6g recon %.6g kl %.5g", vs.loss, vs.recon, vs.kl);
            if (valid.n && K) fprintf(stderr, " fuzzy %.5g", vs.fuzzy);
            if (vs.labeled) fprintf(stderr, " acc %.2f%%", 100.0 * vs.correct / vs.labeled);
            fprintf(stderr, " | %.1f s, %.0f samples/s\n", es.seconds, rate);
        }
        if (log_file) {
            fprintf(log_file, "%ld\t%.9g\t%.9g\t%.9g\t", m.epoch, es.loss, es.recon, es.kl);
            if (valid.n) fprintf(log_file, "%.9g\t%.9g\t%.9g\t", vs.loss, vs.recon, vs.kl);
            else fprintf(log_file, "\t\t\t");
            fprintf(log_file, "%.9g\t%.3f\t%.1f\t%.6g\t%.9g\t", es.lr, es.seconds, rate,
                    es.grad_norm, es.fuzzy);
            if (es.labeled) fprintf(log_file, "%.6f", (double)es.correct / es.labeled);
            fputc('\t', log_file);
            if (valid.n) fprintf(log_file, "%.9g", vs.fuzzy);
            fputc('\t', log_file);
            if (vs.labeled) fprintf(log_file, "%.6f", (double)vs.correct / vs.labeled);
            fputc('\n', log_file);
            /* a log that cannot be written (a full disk) ends the run now, not at the end */
            if (fflush(log_file) || ferror(log_file)) {
                fprintf(stderr, "%s: %s: %s; %s keeps the checkpoint of epoch %ld\n", prog,
                        o.log, strerror(errno), o.out, saved);
                rc = 1;
                break;
            }
        }
    }
    if (log_file && fclose(log_file) && rc == 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, o.log, strerror(errno));
        rc = 1;
    }
    log_file = NULL;
    int sig = stop_signal;
    if (sig && rc == 0) {
        if (saved >= 0)
            fprintf(stderr, "%s: stopped by %s; %s keeps the checkpoint of epoch %ld\n", prog,
                    signal_name(sig), o.out, saved);
        else
            fprintf(stderr, "%s: stopped by %s before the end of the first epoch; %s was not "
                            "written\n", prog, signal_name(sig), o.out);
    }
    rc = finish(rc);
    return sig && rc == 0 ? die_by_signal(sig) : rc;
}
