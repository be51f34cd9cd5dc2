"""The runtime must stay torch-free, even after loading a model and predicting."""
import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "optimum", "onnx", "pandas", "pyarrow", "tqdm")

CODE = """
import json, sys
import onnxpress.runtime
after_import = sorted(m for m in sys.modules if m.split('.')[0] in {heavy} or m == 'onnxruntime')
from onnxpress.runtime import Classifier
clf = Classifier.load(sys.argv[1], threads=1)
preds = clf.predict(["stocks rally", "team wins the game"])
after_predict = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy}))
print(json.dumps({{"import": after_import, "predict": after_predict, "n": len(preds)}}))
"""


def test_import_pulls_in_nothing_heavy(artifact_dir):
    code = CODE.format(heavy=repr(set(HEAVY)))
    out = subprocess.run([sys.executable, "-c", code, str(artifact_dir)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["import"] == [], "importing onnxpress.runtime must be lazy and torch-free"
    assert result["predict"] == [], f"predict pulled in {result['predict']}"
    assert result["n"] == 2
    assert "[E:onnxruntime" not in out.stderr and "Failed to load library" not in out.stderr
