"""Recipe stages 1-5 on generated LibriSpeech and FSDD layouts, the
messages when a corpus is absent, and the option parser."""
import subprocess

from recipe_copy import TEMPLATE, copy_recipe, run_recipe

from fsdd import make_fake_fsdd
from espnet_dld.data.kaldi_dir import read_data_dir
from librispeech import make_fake_librispeech

LS_SETS = ("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other")


def test_librispeech_stages_1_to_5_on_a_generated_tree(tmp_path):
    root = make_fake_librispeech(tmp_path / "LibriSpeech", sets=LS_SETS, num_utts=4, seconds=0.6)
    recipe = copy_recipe("librispeech_dld", tmp_path / "asr1")
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "5", "--nbpe", "40", "--nj", "1",
                            "--min_wav_duration", "0.1"], env={"LIBRISPEECH": str(root)}, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    train = read_data_dir(recipe / "data/train_clean_100")
    assert len(train) == 2 * 2 * 4  # speakers x chapters x utterances
    dev = read_data_dir(recipe / "data/dev")
    assert len(dev) == len(read_data_dir(recipe / "data/dev_clean")) + len(read_data_dir(recipe / "data/dev_other"))
    sp = read_data_dir(recipe / "dump/raw/train_clean_100_sp")
    assert len(sp) == 3 * len(train) and any(u.utt_id.startswith("sp0.9-") for u in sp)
    tokens = (recipe / "data/token_list/bpe_unigram40/tokens.txt").read_text().split()
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>"
    assert (recipe / "data/token_list/bpe_unigram40/bpe.model").is_file()


def test_librispeech_absent_says_what_to_place_where(tmp_path):
    recipe = copy_recipe("librispeech_dld", tmp_path / "asr1")
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "1", "--local_data_opts", "--download false"],
                   env={"LIBRISPEECH": str(tmp_path / "nowhere")}, timeout=120)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert f"{tmp_path / 'nowhere'}/train-clean-100 does not exist" in out and "LIBRISPEECH=" in out


def test_fsdd_stage_1_on_a_generated_folder(tmp_path):
    fsdd = make_fake_fsdd(tmp_path / "fsdd", speakers=("alice", "bob", "carol", "dave"), takes=2)
    recipe = copy_recipe("fsdd_dld", tmp_path / "asr1")
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "1", "--local_data_opts",
                            "--train_utts 8 --dev_utts 2 --test_utts 2 --dev_speakers bob --test_speakers carol"],
                   env={"FSDD": str(fsdd)}, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    spk = {d: {u.spk for u in read_data_dir(recipe / "data" / d)} for d in ("train", "dev", "test")}
    assert spk == {"train": {"alice", "dave"}, "dev": {"bob"}, "test": {"carol"}}
    text = read_data_dir(recipe / "data/test")[0].text
    assert set(text.split()) <= {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}


def test_fsdd_absent_says_where_to_point_db_sh(tmp_path):
    recipe = copy_recipe("fsdd_dld", tmp_path / "asr1")
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "1"], env={"FSDD": str(tmp_path / "none")}, timeout=120)
    assert r.returncode != 0 and "Set FSDD in db.sh" in r.stdout + r.stderr


def _parse(tmp_path, *args):
    script = tmp_path / "opts.sh"
    script.write_text(
        f'stage=1\nstop_stage=100\ndepths=""\nhelp_message="usage: opts.sh"\n'
        f'. {TEMPLATE}/utils/parse_options.sh\necho "$stage|$stop_stage|$depths|$*"\n'
    )
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_parse_options(tmp_path):
    r = _parse(tmp_path, "--stage", "10", "--stop-stage=13", "--depths", "1 2 3", "rest")
    assert r.returncode == 0 and r.stdout.strip() == "10|13|1 2 3|rest"
    r = _parse(tmp_path, "--stgae", "3")
    assert r.returncode == 1 and "unknown option --stgae" in r.stderr
    r = _parse(tmp_path, "--stage")
    assert r.returncode == 1 and "needs a value" in r.stderr
    r = _parse(tmp_path, "--help")
    assert r.returncode == 0 and "usage: opts.sh" in r.stderr
