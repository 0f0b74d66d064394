"""MD5 of every MedMNIST v2/MedMNIST+ single-label release file that xaibench reads: 2D flags
(:mod:`xaibench_medical.medmnist`) and the six 3D flags (:mod:`xaibench_medical.medmnist3d`).

Copied from the ``INFO`` table (``MD5``, ``MD5_64``, ``MD5_128``, ``MD5_224``, and the 3D
flags' ``label`` names) in ``medmnist/info.py`` of the ``medmnist`` 3.0.2 wheel on PyPI, where
every file is at ``https://zenodo.org/records/10519652/files/<name>?download=1``. Left out:
chestmnist (multi-label), which the loader refuses.
"""
from __future__ import annotations

ZENODO = "https://zenodo.org/records/10519652/files"
MD5 = {
    "pathmnist.npz": "a8b06965200029087d5bd730944a56c1",
    "pathmnist_64.npz": "55aa9c1e0525abe5a6b9d8343a507616",
    "pathmnist_128.npz": "ac42d08fb904d92c244187169d1fd1d9",
    "pathmnist_224.npz": "2c51a510bcdc9cf8ddb2af93af1eadec",
    "dermamnist.npz": "0744692d530f8e62ec473284d019b0c7",
    "dermamnist_64.npz": "b70a2f5635c6199aeaa28c31d7202e1f",
    "dermamnist_128.npz": "2defd784463fa5243564e855ed717de1",
    "dermamnist_224.npz": "8974907d8e169bef5f5b96bc506ae45d",
    "octmnist.npz": "c68d92d5b585d8d81f7112f81e2d0842",
    "octmnist_64.npz": "e229e9440236b774d9f0dfef9d07bdaf",
    "octmnist_128.npz": "0a97e76651ace45c5d943ee3f65b63ae",
    "octmnist_224.npz": "abc493b6d529d5de7569faaef2773ba3",
    "pneumoniamnist.npz": "28209eda62fecd6e6a2d98b1501bb15f",
    "pneumoniamnist_64.npz": "8f4eceb4ccffa70c672198ea285246c6",
    "pneumoniamnist_128.npz": "05b46931834c231683c68f40c47b2971",
    "pneumoniamnist_224.npz": "d6a3c71de1b945ea11211b03746c1fe1",
    "retinamnist.npz": "bd4c0672f1bba3e3a89f0e4e876791e4",
    "retinamnist_64.npz": "afda852cc34dcda56f86ad2b2457dbcc",
    "retinamnist_128.npz": "e48e916a24454daf90583d4e6efb1a18",
    "retinamnist_224.npz": "eae7e3b6f3fcbda4ae613ebdcbe35348",
    "breastmnist.npz": "750601b1f35ba3300ea97c75c52ff8f6",
    "breastmnist_64.npz": "742edef2a1fd1524b2efff4bd7ba9364",
    "breastmnist_128.npz": "363e4b3f8d712e9b5de15470a2aaadf1",
    "breastmnist_224.npz": "b56378a6eefa9fed602bb16d192d4c8b",
    "bloodmnist.npz": "7053d0359d879ad8a5505303e11de1dc",
    "bloodmnist_64.npz": "2b94928a2ae4916078ca51e05b6b800b",
    "bloodmnist_128.npz": "adace1e0ed228fccda1f39692059dd4c",
    "bloodmnist_224.npz": "b718ff6835fcbdb22ba9eacccd7b2601",
    "tissuemnist.npz": "ebe78ee8b05294063de985d821c1c34b",
    "tissuemnist_64.npz": "123ece2eba09d0aa5d698fda57103344",
    "tissuemnist_128.npz": "61b955355d7425a89687b06cca3ce0c2",
    "tissuemnist_224.npz": "b077128c4a949f0a4eb01517f9037b9c",
    "organamnist.npz": "68e3f8846a6bd62f0c9bf841c0d9eacc",
    "organamnist_64.npz": "2dcccc29b88e6da5a01161ef20cda288",
    "organamnist_128.npz": "eeae80d0a227a8d099027e1b3cfd3b60",
    "organamnist_224.npz": "50747347e05c87dd3aaf92c49f9f3170",
    "organcmnist.npz": "b9ceb9546e10131b32923c5bbeaea2b1",
    "organcmnist_64.npz": "3ce34a8724ea6f548e6db4744d03b6a9",
    "organcmnist_128.npz": "773c1f009daa3fe5d9a2a201b2a7ed94",
    "organcmnist_224.npz": "050f5e875dc056f6768abf94ec9995d1",
    "organsmnist.npz": "9ab87b696fb54e2a387ebe992d6ed5f1",
    "organsmnist_64.npz": "53a6d115339d874c25e309a994ff46d3",
    "organsmnist_128.npz": "ded0c5fa01a95dc4978b956f613e9b8e",
    "organsmnist_224.npz": "b354719e553fbbb2513d5533f52a4cb1",
}
#: The 3D flags (28^3 and the MedMNIST+ 64^3 size).
MD5_3D = {
    "organmnist3d.npz": "a0c5a1ff56af4f155c46d46fbb45a2fe",
    "organmnist3d_64.npz": "58a2205adf14a9d0a189cb06dc78bf10",
    "nodulemnist3d.npz": "8755a7e9e05a4d9ce80a24c3e7a256f3",
    "nodulemnist3d_64.npz": "c47c5b7d457bf6332200d2ea6d64ecd8",
    "adrenalmnist3d.npz": "bbd3c5a5576322bc4cdfea780653b1ce",
    "adrenalmnist3d_64.npz": "17721accfe9fb005146a47d33bc54b2f",
    "fracturemnist3d.npz": "6aa7b0143a6b42da40027a9dda61302f",
    "fracturemnist3d_64.npz": "f01d7e6316aedf4210da0da5b7437b42",
    "vesselmnist3d.npz": "b41fd4f7e7e2feedddb201585ecafa1b",
    "vesselmnist3d_64.npz": "6bb274a8846e1097066dcd64e2c4520f",
    "synapsemnist3d.npz": "1235b78a3cd6280881dd7850a78eadb6",
    "synapsemnist3d_64.npz": "43bd14ebf3af9d3dd072446fedc14d5e",
}
#: Class names of the 3D flags, in label order.
CLASSES_3D = {
    "organmnist3d": ("liver", "kidney-right", "kidney-left", "femur-right", "femur-left", "bladder", "heart",
                     "lung-right", "lung-left", "spleen", "pancreas"),
    "nodulemnist3d": ("benign", "malignant"),
    "adrenalmnist3d": ("normal", "hyperplasia"),
    "fracturemnist3d": ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
    "vesselmnist3d": ("vessel", "aneurysm"),
    "synapsemnist3d": ("inhibitory synapse", "excitatory synapse"),
}
