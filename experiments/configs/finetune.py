r"""Fine-tune a model file, by default the starter the wheel ships, on your own photos.

  jaxcolor ingest images --src='MY_PHOTOS/**/*.jpg' --out=my_records --size=144
  python experiments/run.py --config=experiments/configs/finetune.py \
      --config.data.train=my_records --workdir=runs/mine
  jaxcolor colorize --checkpoint=runs/mine --input=old.jpg --output=old-colour.png

`finetune.py:PATH.npz` fine-tunes another model file (`python -m jaxcolor.inference.starter
RUN OUT` writes one from a run). G is the file's own: `config.model` as the file holds it
(encoder, decoder, hint branch, and its calibrated chroma scale and exponent, which the loss
and every command keep applying), started from its weights (`config.model.init_from`,
`jaxcolor.model_file`). The starter's recipe had no GAN phase, so neither has this: L1 on
the delivered colours, at a tenth of the starter's peak rate on a cosine (its weights are
already good; the rate is what keeps a few hundred photos from undoing them), batch 8 at
the file's crop size. With the file's hint branch, hints are simulated as in training it.
The default length, 1,000 steps (8,000 crops), is about 15 minutes on 2 CPU cores for the
starter; records ingested at `--size` a little above the crop (144 for 128, as the starter's
were) keep the photos at the scale it learned. Any field can be overridden as for gan.py.
"""

import ml_collections

from jaxcolor import configs, model_file

gan = configs.sibling(__file__, "gan.py")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    source = model_file.resolve(variant or "starter")
    shipped = model_file.read(source, remedy="name a model file: finetune.py:PATH.npz")
    config = gan.get_config("pretrain")
    config.model.update(shipped.config.model)  # its machine's paths were cleared on writing
    config.model.init_from = str(source)
    config.data.crop_size = int(shipped.config.data.crop_size)
    config.batch_size = 8
    config.phases.pretrain_steps = 1_000
    config.g.lr = 5e-5
    config.g.schedule = "cosine"
    config.best_metric = "l1"
    config.log_every = 25
    config.eval_every = 250
    config.eval_max_images = 200
    config.checkpoint_every = 250
    return config
