"""Training data: the pairs handles (``pairs``: one per kind of data), arrays and ``tf.data``
pipelines (``pipelines``), degradations (``degrade``), MATLAB bicubic (``resize``) and the task
names (``tasks``). Importing it loads no TensorFlow; the pipelines import it when they run."""
